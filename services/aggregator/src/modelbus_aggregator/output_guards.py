"""Output guardrails: what a route's policy demands of an answer before the caller gets it.

The router decides which guards apply and leaves them, with the input guardrails' findings
and (where the route allows restoring) the placeholder map, in Redis under the request's
(tenant, request id) scope — :func:`~modelbus_schemas.identity.scoped_id`, never the request
id alone: a placeholder map restored into another tenant's answer would leak personal data
(layout: :mod:`modelbus_router.guardrails.handoff`; the models below mirror it, because the
two services share no package but the contract — see "contract wish" below). When the
aggregator has chosen a response, :meth:`OutputGuardian.review` runs, in order:

1. ``json_schema`` — the output must parse as JSON and match the schema. On a single or
   fallback route a failing output is sent back to the same model with the validation
   problem, at most ``repairs`` times (a repair is plan step 1, 2, …; its cost is added to
   the final response); a cascade already escalated through its tiers (the router put the
   schema on them); what still fails becomes an ``output_invalid`` error, never ``ok``;
2. ``regex`` rules (must or must not match) and the ``deny_list``;
3. ``pii`` — personal data the model produced (the model only ever saw placeholders, so
   any personal data in its output is new): deny, redact or flag.

``validate`` denies (``output_invalid``), ``mutate`` redacts (``[REDACTED]``, ``[EMAIL]``),
``flag`` records. Every guard's outcome is a :class:`GuardrailFinding` on the response,
after the router's input findings — rule, mode, categories and counts, never a value.

Restoring placeholders (:meth:`OutputGuardian.for_caller`) happens at publish time only:
the stored decision and the response cache keep the redacted text (two requests with
different card numbers redact to the same prompt, so a restored cached answer would leak
one caller's card to the other). Trade-off: the reply topic carries the restored text the
caller needs, and the audit consumer reads that topic too; the audit store redacts personal
data in response text on storage (``MODELBUS_AUDIT_TEXT_MODE=redact``, its default). A
deployment that cannot accept personal data on the reply topic at all sets ``restore:
false`` on the route (the default): the placeholders then reach the caller as they are.

Contract wish: the record layout (and these spec models) belong in the shared runtime or
the contract, e.g. ``ExecutionPlan.output_guards``, so no Redis read is needed for routes
without guards and the two services cannot drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from modelbus_runtime.errors import TransientInfraError
from modelbus_runtime.pii import KINDS as PII_KINDS
from modelbus_runtime.pii import find_pii, redact_pii
from modelbus_schemas import (
    ChatMessage,
    CheckSpec,
    ErrorCode,
    ErrorInfo,
    GuardrailFinding,
    PartSummary,
    ResponseEvent,
    Target,
    TaskEvent,
    ToolCall,
    Usage,
)
from modelbus_schemas.identity import scoped_id
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from modelbus_aggregator.actions import Dispatch, Respond
from modelbus_aggregator.checks import run_check
from modelbus_aggregator.steps import step_task

KEY_PREFIX = "modelbus:guard:"
REDACTED = "[REDACTED]"
Mode = Literal["validate", "mutate", "flag", "off"]


class _Mirror(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class JsonSchemaRule(_Mirror):
    mode: Mode = "validate"
    json_schema: dict[str, Any] = Field(default_factory=dict)
    repairs: int = 1


class RegexRule(_Mirror):
    name: str
    pattern: str
    require: bool = False
    mode: Mode = "validate"


class DenyListRule(_Mirror):
    mode: Mode = "validate"
    terms: list[str]


class PiiRule(_Mirror):
    mode: Mode = "mutate"
    kinds: list[str] = Field(default_factory=lambda: list(PII_KINDS))


class OutputSpec(_Mirror):
    json_schema: JsonSchemaRule | None = None
    regex: list[RegexRule] = Field(default_factory=list)
    deny_list: DenyListRule | None = None
    pii: PiiRule | None = None


@dataclass(frozen=True)
class GuardRecord:
    output: OutputSpec
    findings: list[GuardrailFinding]
    task: TaskEvent | None  # the first task, when a bad JSON output may be repaired
    failed: list[dict]  # cost of outputs sent back for repair


@dataclass(frozen=True)
class _Output:
    """What :func:`~modelbus_aggregator.checks.run_check` reads of a result."""

    text: str
    status: str = "ok"
    confidence: float | None = None
    tool_calls: None = None
    parsed: None = None


class _Denied(Exception):
    def __init__(self, guard: str, reason: str) -> None:
        super().__init__(reason)
        self.guard = guard


def record_key(scope: str) -> str:
    """The guard record of the request ``scope`` (its scoped id)."""
    return f"{KEY_PREFIX}{{{scope}}}"


def _scope(response: ResponseEvent) -> str:
    return scoped_id(response.tenant, response.request_id)


def _finding(guard: str, mode: str, action: str, categories: dict | None = None,
             detail: str | None = None) -> GuardrailFinding:
    return GuardrailFinding(guard=guard, stage="output", mode=mode, action=action,
                            categories=categories or {}, detail=detail and detail[:512])


class OutputGuardian:
    def __init__(self, redis, prefix: str = KEY_PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix

    async def review(self, response: ResponseEvent) -> Respond | Dispatch:
        """The response the caller may get, or the task that repairs the output."""
        record = await self._load(_scope(response))
        if record is None:
            return Respond(response)
        original, response = response, _with_failed(response, record.failed)
        findings = list(record.findings)
        if response.status == "error" or (response.output is None
                                          and not response.tool_calls):
            return Respond(response.model_copy(update={"guardrails": findings}))
        update: dict = {}
        try:
            if response.output is not None:
                text = self._schema(record, response, findings)
                if isinstance(text, Dispatch):
                    await self._remember_failed(original)
                    return text
                update["output"] = _rules(record.output, text, findings)
                if response.parsed is not None and update["output"] != response.output:
                    update["parsed"] = _parsed_or_none(update["output"])
            if response.tool_calls:
                update["tool_calls"] = _guard_calls(record.output, response.tool_calls,
                                                    findings)
        except _Denied as denied:
            return Respond(response.model_copy(update={
                "status": "error", "output": None, "tool_calls": None, "parsed": None,
                "guardrails": findings,
                "error": ErrorInfo(code=ErrorCode.OUTPUT_INVALID, message=(
                    f"the output failed the {denied.guard} guardrail: {denied}")[:4096]),
            }))
        return Respond(response.model_copy(update={**update, "guardrails": findings}))

    async def for_caller(self, response: ResponseEvent) -> ResponseEvent:
        """``response`` with the request's placeholders restored, where the route allows."""
        if response.output is None or not any(
                f.guard == "pii" and f.stage == "input" and f.action == "redacted"
                for f in response.guardrails):
            return response
        try:
            raw = await self.redis.hget(self._key(_scope(response)), "restore")
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for guard records: {exc}") from exc
        if not raw:
            return response
        text = response.output
        for placeholder, value in orjson.loads(raw).items():
            text = text.replace(placeholder, value)
        return response.model_copy(update={"output": text})

    # -- internals ---------------------------------------------------------------------

    def _key(self, scope: str) -> str:
        return f"{self.prefix}{{{scope}}}"

    async def _load(self, scope: str) -> GuardRecord | None:
        try:
            raw = await self.redis.hgetall(self._key(scope))
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for guard records: {exc}") from exc
        fields = {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}
        if "spec" not in fields:
            return None
        spec = orjson.loads(fields["spec"])
        task = TaskEvent.model_validate_json(fields["task"]) if "task" in fields else None
        failed = [orjson.loads(v) for k, v in sorted(fields.items()) if k.startswith("failed:")]
        return GuardRecord(OutputSpec.model_validate(spec.get("output", {})),
                           [GuardrailFinding.model_validate(f) for f in spec.get("findings", [])],
                           task, failed)

    def _schema(self, record: GuardRecord, response: ResponseEvent,
                findings: list[GuardrailFinding]) -> str | Dispatch:
        rule, text = record.output.json_schema, response.output or ""
        if rule is None or rule.mode == "off":
            return text
        outcome = run_check(CheckSpec(kind="json_schema", json_schema=rule.json_schema),
                            _Output(text))
        step = max((p.step for p in response.parts if p.status == "ok"), default=0)
        if outcome.passed:
            action, detail = ("repaired", f"valid after {step} repair(s)") if step else (
                "allowed", None)
            findings.append(_finding("json_schema", rule.mode, action, detail=detail))
            return text
        reason = outcome.reason.split(":")[0]  # never the offending value
        if rule.mode == "flag":
            findings.append(_finding("json_schema", rule.mode, "flagged", detail=reason))
            return text
        if record.task is not None and step < rule.repairs:
            return Dispatch(_repair_task(record.task, step + 1, text, outcome.reason, rule))
        findings.append(_finding("json_schema", rule.mode, "denied",
                                 detail=f"{reason} (after {step} repair(s))"))
        raise _Denied("json_schema", f"{reason}, after {step} repair attempt(s)")

    async def _remember_failed(self, response: ResponseEvent) -> None:
        """Keep the cost of an output sent back for repair (idempotent by its step)."""
        step = max((p.step for p in response.parts if p.status == "ok"), default=0)
        body = orjson.dumps({"usage": response.usage.model_dump(), "cost_usd": response.cost_usd,
                             "parts": [p.model_dump(mode="json") for p in response.parts]})
        try:
            await self.redis.hset(self._key(_scope(response)), f"failed:{step:02d}", body)
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for guard records: {exc}") from exc


def _guard_calls(spec: OutputSpec, calls: list[ToolCall],
                 findings: list[GuardrailFinding]) -> list[ToolCall]:
    """Tool-call arguments reach the caller's tools: deny lists, PII and forbidden patterns
    apply to them as to text (patterns an answer *requires* do not)."""
    forbidding = spec.model_copy(update={"regex": [r for r in spec.regex if not r.require]})
    return [call.model_copy(update={"arguments": _rules(forbidding, call.arguments, findings)})
            for call in calls]


def _parsed_or_none(text: str):
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _rules(spec: OutputSpec, text: str, findings: list[GuardrailFinding]) -> str:
    for rule in spec.regex:
        if rule.mode == "off":
            continue
        pattern = re.compile(rule.pattern)
        hits = len(pattern.findall(text))
        bad = (hits == 0) if rule.require else hits > 0
        guard = f"regex:{rule.name}"
        counts = {rule.name: hits} if hits else {}
        if not bad:
            findings.append(_finding(guard, rule.mode, "allowed", counts))
        elif rule.mode == "flag":
            findings.append(_finding(guard, rule.mode, "flagged", counts))
        elif rule.mode == "mutate" and not rule.require:
            text = pattern.sub(REDACTED, text)
            findings.append(_finding(guard, rule.mode, "redacted", counts))
        else:
            findings.append(_finding(guard, rule.mode, "denied", counts))
            raise _Denied(guard, "required pattern not found" if rule.require
                          else f"forbidden pattern found {hits} time(s)")
    if spec.deny_list is not None and spec.deny_list.mode != "off":
        text = _deny_list(spec.deny_list, text, findings)
    if spec.pii is not None and spec.pii.mode != "off":
        text = _pii(spec.pii, text, findings)
    return text


def _deny_list(rule: DenyListRule, text: str, findings: list[GuardrailFinding]) -> str:
    pattern = re.compile(r"(?i)\b(?:" + "|".join(re.escape(t) for t in rule.terms) + r")\b")
    hits = len(pattern.findall(text))
    counts = {"deny_list": hits} if hits else {}
    if not hits:
        findings.append(_finding("deny_list", rule.mode, "allowed"))
    elif rule.mode == "flag":
        findings.append(_finding("deny_list", rule.mode, "flagged", counts))
    elif rule.mode == "mutate":
        findings.append(_finding("deny_list", rule.mode, "redacted", counts))
        return pattern.sub(REDACTED, text)
    else:
        findings.append(_finding("deny_list", rule.mode, "denied", counts))
        raise _Denied("deny_list", f"{hits} denied term(s) in the output")
    return text


def _pii(rule: PiiRule, text: str, findings: list[GuardrailFinding]) -> str:
    kinds = tuple(rule.kinds)
    counts: dict[str, int] = {}
    for match in find_pii(text, kinds):
        counts[match.kind] = counts.get(match.kind, 0) + 1
    if not counts:
        findings.append(_finding("pii", rule.mode, "allowed"))
    elif rule.mode == "flag":
        findings.append(_finding("pii", rule.mode, "flagged", counts))
    elif rule.mode == "mutate":
        findings.append(_finding("pii", rule.mode, "redacted", counts))
        return redact_pii(text, kinds)
    else:
        findings.append(_finding("pii", rule.mode, "denied", counts))
        raise _Denied("pii", "personal data in the output (" + ", ".join(
            f"{k} ×{n}" for k, n in sorted(counts.items())) + ")")
    return text


def _repair_task(origin: TaskEvent, step: int, bad_output: str, problem: str,
                 rule: JsonSchemaRule) -> TaskEvent:
    schema = orjson.dumps(rule.json_schema).decode()
    ask = (f"Your previous reply is not valid: {problem}. Reply again with only a JSON "
           f"document (no prose, no code fence) that matches this JSON Schema: {schema}")
    messages = [*origin.messages, ChatMessage(role="assistant", content=bad_output[:100_000]),
                ChatMessage(role="user", content=ask)]
    target = Target(provider=origin.provider, model=origin.model, retry=origin.retry)
    return step_task(origin, target=target, step=step, messages=messages)


def _with_failed(response: ResponseEvent, failed: list[dict]) -> ResponseEvent:
    """Add what the outputs sent back for repair cost to the final response."""
    if not failed:
        return response
    usage, cost = response.usage, response.cost_usd
    parts = list(response.parts)
    for attempt in failed:
        usage = usage + Usage.model_validate(attempt["usage"])
        cost += attempt["cost_usd"]
        parts += [PartSummary.model_validate(p) for p in attempt["parts"]]
    parts = sorted({(p.step, p.part_id): p for p in parts}.values(),
                   key=lambda p: (p.step, p.part_id))
    return response.model_copy(update={"usage": usage, "cost_usd": round(cost, 10),
                                       "parts": parts})
