"""Checks on one output (``CheckSpec``): cascade escalation and best-by-score validation.

Pure functions, no I/O. ``json_schema``, ``regex``, ``min_length`` and ``min_confidence``
are decided here; a ``judge`` check needs one more LLM call, so :func:`run_check` reports
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

_FENCE = re.compile(r"^```[a-zA-Z0-9]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    score: float  # 1.0/0.0 for pass/fail checks, the confidence for min_confidence
    reason: str


def run_check(spec: CheckSpec, result: ResultEvent) -> CheckOutcome | None:
    """Evaluate ``spec`` on ``result``; ``None`` when a judge has to decide."""
    if result.status != "ok" or result.text is None:
        return CheckOutcome(False, 0.0, "no output")
    text = result.text
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
    if spec.kind == "json_schema":
        return _json_schema(spec, text)
    return CheckOutcome(False, 0.0, f"unknown check {spec.kind}")


def _json_schema(spec: CheckSpec, text: str) -> CheckOutcome:
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        document = json.loads(body)
    except ValueError:
        return CheckOutcome(False, 0.0, "output is not JSON")
    if spec.json_schema is None:
        return CheckOutcome(True, 1.0, "valid JSON")
    try:
        validator = Draft202012Validator(spec.json_schema)
        error = next(iter(validator.iter_errors(document)), None)
    except SchemaError as exc:
        return CheckOutcome(False, 0.0, f"bad schema in policy: {exc.message}")
    if error is None:
        return CheckOutcome(True, 1.0, "matches schema")
    where = "/".join(str(p) for p in error.absolute_path) or "<root>"
    return CheckOutcome(False, 0.0, f"schema violation at {where}: {error.message}")


def _verdict(passed: bool, reason: str, score: float | None = None) -> CheckOutcome:
    return CheckOutcome(passed, score if score is not None else float(passed), reason)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)
