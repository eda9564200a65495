"""Checks on one output (``CheckSpec``): cascade escalation and best-by-score validation.

Pure functions, no I/O. ``json_schema``, ``regex``, ``min_length`` and ``min_confidence``
are decided here. ``json_schema`` validates a JSON answer against the check's schema, or
against the request's own ``response_format`` schema when the check gives none; an answer
made of tool calls passes when every call names an offered tool and its arguments are
valid for that tool's parameters schema; a ``judge`` check needs one more LLM call, so :func:`run_check` reports
it as undecided (``None``) and the caller asks the judge (see :mod:`modelbus_aggregator.judge`).
A check of an error result always fails.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from modelbus_schemas import CheckSpec, ResultEvent

from modelbus_aggregator.answers import answer_text

_FENCE = re.compile(r"^```[a-zA-Z0-9]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    score: float  # 1.0/0.0 for pass/fail checks, the confidence for min_confidence
    reason: str


def run_check(spec: CheckSpec, result: ResultEvent) -> CheckOutcome | None:
    """Evaluate ``spec`` on ``result``; ``None`` when a judge has to decide."""
    if result.status != "ok" or (result.text is None and not result.tool_calls
                                 and result.parsed is None):
        return CheckOutcome(False, 0.0, "no output")
    if spec.kind == "json_schema":
        return _json_schema(spec, result)
    text = answer_text(result)
    if spec.kind == "judge":
        return None
    if spec.kind == "min_confidence":
        threshold = spec.threshold if spec.threshold is not None else 0.5
        confidence = result.confidence
        if confidence is None:
            return CheckOutcome(False, 0.0, "no confidence reported")
        return _verdict(confidence >= threshold, f"confidence {confidence} vs {threshold}",
                        score=confidence)
    if spec.kind == "min_length":
        need = spec.min_chars or 1
        return _verdict(len(text.strip()) >= need, f"{len(text.strip())} chars vs {need}")
    if spec.kind == "regex":
        if not spec.pattern:
            return CheckOutcome(False, 0.0, "regex check without a pattern")
        try:
            found = _compiled(spec.pattern).search(text) is not None
        except re.error as exc:
            return CheckOutcome(False, 0.0, f"bad pattern: {exc}")
        return _verdict(found, "pattern matched" if found else "pattern not found")
    return CheckOutcome(False, 0.0, f"unknown check {spec.kind}")


def _json_schema(spec: CheckSpec, result: ResultEvent) -> CheckOutcome:
    if result.tool_calls:
        return _tool_arguments(result)
    document = result.parsed
    if document is None:
        body = (result.text or "").strip()
        fenced = _FENCE.match(body)
        if fenced:
            body = fenced.group(1)
        try:
            document = json.loads(body)
        except ValueError:
            return CheckOutcome(False, 0.0, "output is not JSON")
    schema = spec.json_schema if spec.json_schema is not None else _requested_schema(result)
    if schema is None:
        return CheckOutcome(True, 1.0, "valid JSON")
    return _against(schema, document, "matches schema")


def _requested_schema(result: ResultEvent) -> dict | None:
    origin = getattr(result, "origin", None)
    rf = origin.params.response_format if origin is not None else None
    return rf.json_schema.schema_ if rf is not None and rf.json_schema is not None else None


def _tool_arguments(result: ResultEvent) -> CheckOutcome:
    origin = getattr(result, "origin", None)
    offered = {t.name: t for t in (origin.params.tools or [])} if origin is not None else {}
    for call in result.tool_calls:
        tool = offered.get(call.name)
        if tool is None:
            return CheckOutcome(False, 0.0, f"call of a tool not offered: {call.name}")
        try:
            arguments = json.loads(call.arguments)
        except ValueError:
            return CheckOutcome(False, 0.0, f"arguments of {call.name} are not JSON")
        outcome = _against(tool.parameters, arguments, "tool arguments match")
        if not outcome.passed:
            return CheckOutcome(False, 0.0, f"{call.name}: {outcome.reason}")
    return CheckOutcome(True, 1.0, "tool arguments match")


def _against(schema: dict, document: object, ok_reason: str) -> CheckOutcome:
    try:
        validator = Draft202012Validator(schema)
        error = next(iter(validator.iter_errors(document)), None)
    except SchemaError as exc:
        return CheckOutcome(False, 0.0, f"bad schema: {exc.message}")
    if error is None:
        return CheckOutcome(True, 1.0, ok_reason)
    where = "/".join(str(p) for p in error.absolute_path) or "<root>"
    return CheckOutcome(False, 0.0, f"schema violation at {where}: {error.message}")


def _verdict(passed: bool, reason: str, score: float | None = None) -> CheckOutcome:
    return CheckOutcome(passed, score if score is not None else float(passed), reason)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)
