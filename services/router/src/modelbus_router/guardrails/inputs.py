"""Input guardrails, applied by the router after the route is resolved and before planning:
size limits, then secrets, then prompt injection, then personal data.

:func:`screen` returns the request the plan is built from (redacted, context re-marked),
the findings for the decision's lineage and the placeholder map (only when the policy lets
the caller have the values back). A ``validate`` guard that fires raises
:class:`GuardrailDenied` — a :class:`~modelbus_router.errors.RoutingError` with code
``guardrail_denied``, a message naming the guard and the kinds found (never a value), and
the findings, so the error response carries them too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from modelbus_runtime.secret_scan import find_secrets
from modelbus_schemas import ErrorCode, GuardrailFinding, RequestEvent

from modelbus_router.errors import RoutingError
from modelbus_router.guardrails.injection import DETECTORS
from modelbus_router.guardrails.redaction import Redactor
from modelbus_router.guardrails.spec import InputGuards
from modelbus_router.tokens import estimate_request


class GuardrailDenied(RoutingError):
    def __init__(self, message: str, findings: list[GuardrailFinding]) -> None:
        super().__init__(ErrorCode.GUARDRAIL_DENIED, message)
        self.findings = findings


@dataclass(frozen=True)
class Screened:
    request: RequestEvent
    findings: list[GuardrailFinding] = field(default_factory=list)
    restore_map: dict[str, str] = field(default_factory=dict)


def _texts(request: RequestEvent) -> list[str]:
    """The content the models read: message text (tool results included), context and
    embedding inputs."""
    return ([m.text for m in request.messages] + [c.content for c in request.context]
            + list(request.input or ()))


def _tool_text(request: RequestEvent) -> list[str]:
    """What tools carry: the arguments of earlier calls, the tools' descriptions and
    schemas, and the answer's schema (a caller can paste a secret into any of them)."""
    params = request.params
    calls = [c.arguments for m in request.messages for c in m.tool_calls or ()]
    tools = [t.model_dump_json(exclude_none=True) for t in params.tools or ()]
    schema = params.response_format.json_schema if params.response_format else None
    return [*calls, *tools, *([schema.model_dump_json()] if schema else [])]


def _free_text(request: RequestEvent) -> list[str]:
    """Every field a caller writes freely: a secret in any of them is carried to the models,
    the logs or the audit, so the secret screen reads them all."""
    caller = request.caller
    return [*_texts(request), *_tool_text(request), *(c.title for c in request.context),
            *request.metadata.keys(), *request.metadata.values(),
            *(v for v in (caller.tenant, caller.team, caller.user, request.session_id,
                          request.idempotency_key) if v)]


def _finding(guard: str, mode: str, action: str, counts: Counter | dict,
             detail: str | None = None) -> GuardrailFinding:
    return GuardrailFinding(guard=guard, stage="input", mode=mode, action=action,
                            categories=dict(counts), detail=detail)


def _kinds(counts: Counter | dict) -> str:
    return ", ".join(f"{kind} ×{n}" for kind, n in sorted(counts.items()))


def screen(guards: InputGuards, request: RequestEvent, *, hosted: bool,
           task: str) -> Screened:
    """Apply ``guards`` to ``request``; ``hosted``: a hosted model may see this request."""
    findings: list[GuardrailFinding] = []
    _size(guards, request, task, findings)
    _secrets(guards, request, findings)
    request = _injection(guards, request, findings)
    return _pii(guards, request, hosted, findings)


def _size(guards: InputGuards, request: RequestEvent, task: str,
          findings: list[GuardrailFinding]) -> None:
    limit = guards.size
    if limit.max_chars is None and limit.max_tokens is None:
        return
    chars = sum(len(t) for t in _texts(request))
    tokens = estimate_request(request)
    problems = []
    if limit.max_chars is not None and chars > limit.max_chars:
        problems.append(f"{chars} characters (limit {limit.max_chars})")
    if limit.max_tokens is not None and tokens > limit.max_tokens:
        problems.append(f"~{tokens} estimated tokens (limit {limit.max_tokens})")
    if problems:
        findings.append(_finding("size", "validate", "denied", {},
                                 f"chars={chars} tokens~{tokens}"))
        raise GuardrailDenied(f"input too large for task {task!r}: " + "; ".join(problems)
                              + "; shorten the messages or context", findings)


def _secrets(guards: InputGuards, request: RequestEvent,
             findings: list[GuardrailFinding]) -> None:
    mode = guards.secrets.mode
    if mode == "off":
        return
    found = find_secrets(_free_text(request))
    if not found:
        return
    if mode == "flag":
        findings.append(_finding("secrets", mode, "flagged", found))
        return
    # mutate is treated as validate: a leaked secret must be rotated, not quietly stripped
    findings.append(_finding("secrets", mode, "denied", found))
    raise GuardrailDenied(f"the prompt contains secrets ({_kinds(found)}); remove them and "
                          "rotate any credential that was pasted", findings)


def _injection(guards: InputGuards, request: RequestEvent,
               findings: list[GuardrailFinding]) -> RequestEvent:
    spec = guards.injection
    if spec.mode == "off":
        return request
    detector = DETECTORS[spec.detector]
    # a tool's result is data from outside, as untrusted as a user turn
    in_messages = detector(m.text for m in request.messages if m.role in ("user", "tool"))
    in_context = [detector([c.content]) for c in request.context]
    found = in_messages + sum(in_context, Counter())
    if not found:
        return request
    if spec.mode == "validate":
        findings.append(_finding("injection", spec.mode, "denied", found))
        raise GuardrailDenied(f"the prompt looks like a prompt injection ({_kinds(found)})",
                              findings)
    if spec.mode == "mutate" and any(in_context):
        context = [c.model_copy(update={"trusted": False}) if hit else c
                   for c, hit in zip(request.context, in_context, strict=True)]
        marked = sum(1 for c, hit in zip(request.context, in_context, strict=True)
                     if hit and c.trusted)
        findings.append(_finding("injection", spec.mode, "redacted", found,
                                 f"{marked} context block(s) marked untrusted"))
        return request.model_copy(update={"context": context})
    findings.append(_finding("injection", spec.mode, "flagged", found))
    return request


def _pii(guards: InputGuards, request: RequestEvent, hosted: bool,
         findings: list[GuardrailFinding]) -> Screened:
    spec = guards.pii
    kinds = tuple(k for k in spec.kinds if not (hosted and k in spec.allow))
    if spec.mode == "off" or not kinds or (spec.scope == "hosted" and not hosted):
        return Screened(request, findings)
    redactor = Redactor(kinds)
    messages = [m.map_text(redactor.redact) for m in request.messages]
    inputs = [redactor.redact(text) for text in request.input] if request.input else None
    context = [c.model_copy(update={"content": redactor.redact(c.content)})
               for c in request.context]
    if not redactor.counts:
        return Screened(request, findings)
    if spec.mode == "validate":
        findings.append(_finding("pii", spec.mode, "denied", redactor.counts))
        raise GuardrailDenied(f"the prompt contains personal data ({_kinds(redactor.counts)}) "
                              "that this task may not send to its models", findings)
    if spec.mode == "flag":
        findings.append(_finding("pii", spec.mode, "flagged", redactor.counts))
        return Screened(request, findings)
    detail = "restorable for the caller" if spec.restore else "irreversible"
    findings.append(_finding("pii", spec.mode, "redacted", redactor.counts, detail))
    redacted = request.model_copy(update={"messages": messages, "context": context,
                                           "input": inputs})
    return Screened(redacted, findings, redactor.mapping if spec.restore else {})
