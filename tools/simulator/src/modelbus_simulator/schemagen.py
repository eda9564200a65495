"""Deterministic JSON instances generated from a JSON Schema, checked with `jsonschema`.

Tool-call arguments and structured outputs must be valid against the caller's schema, so
`instance_for(schema)` builds the smallest sensible value (first enum/const, first anyOf
branch, every listed property, `minItems` items, strings padded to `minLength`, numbers
inside `minimum`/`maximum`) and `check(schema, value)` validates it with the `jsonschema`
library.  Gemini's OpenAPI-subset schemas (`type: "OBJECT"`, `nullable`) are normalised
to JSON Schema first by `from_openapi`.  Local `$ref`s (`#/$defs/...`,
`#/definitions/...`) are followed.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import orjson

_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00Z",
    "email": "sim@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
}
_MAX_DEPTH = 12


class SchemaError(ValueError):
    """The schema itself is not a valid JSON Schema."""


def check_schema(schema: object) -> None:
    """Raise `SchemaError` when `schema` is not a valid JSON Schema (2020-12 metaschema).

    Metaschema validation costs milliseconds, and callers send the same tool schemas on
    every call, so verdicts are cached by the schema's canonical JSON."""
    if not isinstance(schema, dict):
        raise SchemaError("schema must be a JSON object")
    try:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        raise SchemaError("schema is not JSON") from None
    problem = _schema_problem(key)
    if problem is not None:
        raise SchemaError(problem)


@functools.lru_cache(maxsize=1024)
def _schema_problem(key: bytes) -> str | None:
    try:
        jsonschema.Draft202012Validator.check_schema(orjson.loads(key))
    except jsonschema.SchemaError as exc:
        return exc.message
    return None


def check(schema: dict, value: object) -> str | None:
    """None when `value` is valid for `schema`, else the validator's message."""
    err = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(value)
    )
    return None if err is None else err.message


def from_openapi(schema: object) -> Any:
    """Gemini `Schema` (OpenAPI 3.0 subset: upper-case types, `nullable`) -> JSON Schema."""
    if isinstance(schema, list):
        return [from_openapi(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: from_openapi(v) for k, v in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf", "prefixItems"):
            out[key] = from_openapi(value)
        elif key in ("nullable", "propertyOrdering"):
            continue
        else:
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def instance_for(schema: object, root: dict | None = None, depth: int = 0) -> Any:
    """A deterministic value valid for `schema` (the usual subset: no `not`, no patterns)."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None if schema is False else {}
    root = schema if root is None else root
    if "$ref" in schema:
        return instance_for(_resolve(root, schema["$ref"]), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return instance_for(schema[key][0], root, depth + 1)
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged.update(part)
        return instance_for({**merged, **{k: v for k, v in schema.items() if k != "allOf"}},
                            root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    return _BY_TYPE.get(kind, _string)(schema, root, depth)


def _resolve(root: dict, ref: object) -> object:
    if not isinstance(ref, str) or not ref.startswith("#"):
        return {}
    node: object = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        if not isinstance(node, dict):
            return {}
        node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
    return node


def _object(schema: dict, root: dict, depth: int) -> dict:
    props = schema.get("properties") or {}
    out = {
        name: instance_for(sub, root, depth + 1)
        for name, sub in props.items()
        if isinstance(name, str)
    }
    for name in schema.get("required") or ():
        if isinstance(name, str) and name not in out:
            out[name] = "x"
    return out


def _array(schema: dict, root: dict, depth: int) -> list:
    items = schema.get("items", {})
    prefix = schema.get("prefixItems") or []
    count = max(int(schema.get("minItems") or 0), 1, len(prefix))
    if isinstance(schema.get("maxItems"), int):
        count = min(count, schema["maxItems"])
    out = [instance_for(p, root, depth + 1) for p in prefix][:count]
    while len(out) < count:
        out.append(instance_for(items, root, depth + 1))
    return out


def _string(schema: dict, root: dict, depth: int) -> str:
    text = _FORMATS.get(schema.get("format"), "sample")
    low = int(schema.get("minLength") or 0)
    if len(text) < low:
        text += "x" * (low - len(text))
    high = schema.get("maxLength")
    if isinstance(high, int) and len(text) > high:
        text = text[:high]
    return text


def _number(schema: dict, root: dict, depth: int) -> float | int:
    low, high = schema.get("minimum"), schema.get("maximum")
    excl_low = schema.get("exclusiveMinimum")
    value: float = 1
    if isinstance(low, (int, float)):
        value = low
    elif isinstance(excl_low, (int, float)) and not isinstance(excl_low, bool):
        value = excl_low + 1
    if isinstance(high, (int, float)) and value > high:
        value = high
    return int(value) if schema.get("type") == "integer" else value


_BY_TYPE = {
    "object": _object,
    "array": _array,
    "string": _string,
    "integer": _number,
    "number": _number,
    "boolean": lambda s, r, d: True,
    "null": lambda s, r, d: None,
}
