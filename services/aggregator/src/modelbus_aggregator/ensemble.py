"""Ensemble flow: N parts in parallel, fanned in by the plan's :class:`EnsembleSpec`.

Responds when :func:`~modelbus_aggregator.strategies.is_ready` holds (every part arrived,
the quorum of successes, or one success for ``first_success``) or when the deadline passed.
Parts with no result by then are named in ``missing_parts``; a response forced by the
deadline with parts missing is ``partial`` (``error`` when nothing succeeded), while a
response on quorum is ``ok`` and still names the parts it did not wait for.

``judge``: once ready with two or more successful candidates, one judge task is dispatched
(part ``parts_total``, step 0); its verdict picks the output. Without a judge target, if the
judge fails, or if the deadline passes first, the first successful part in part order answers.
"""

from __future__ import annotations

from modelbus_schemas import EnsembleSpec, ErrorCode, ErrorInfo, ResultEvent, TaskEvent

from modelbus_aggregator.actions import Action, Dispatch, FlowInput, Respond
from modelbus_aggregator.answers import answer_text
from modelbus_aggregator.judge import ensemble_messages, listed_parts, question_of, read_choice
from modelbus_aggregator.responses import build_response, missing_summary
from modelbus_aggregator.steps import judge_task
from modelbus_aggregator.strategies import Pick, choose, is_ready


def decide(spec: EnsembleSpec, total: int, flow: FlowInput) -> Action:
    parts = [flow.results[(i, 0)] for i in range(total) if (i, 0) in flow.results]
    if not parts or (not flow.final and not is_ready(spec, parts, total)):
        return None
    ok = [r for r in parts if r.status == "ok"]
    everything = list(flow.results.values())
    missing = _missing(total, parts)
    if not ok:
        timed_out = flow.final and bool(missing)
        error = (ErrorInfo(code=ErrorCode.DEADLINE_EXCEEDED,
                           message=f"no part succeeded before the deadline; missing parts "
                                   f"{[m.part_id for m in missing]}", retryable=True)
                 if timed_out or parts[0].error is None else parts[0].error)
        return Respond(build_response(everything, status="error", error=error, missing=missing,
                                      now=flow.now))
    pick: Pick
    if spec.strategy == "judge" and len(ok) >= 2:
        verdict = flow.results.get((total, 0))
        if verdict is None and not flow.final and spec.judge is not None:
            origin = next((r.origin for r in ok if r.origin is not None), None)
            if origin is not None:
                return Dispatch(_judge_task(origin, spec, ok))
        pick = _judged(verdict, ok)
    else:
        pick = choose(spec, ok)
    status = "partial" if flow.final and missing else "ok"
    return Respond(build_response(everything, status=status, output=pick.output,
                                  answered=pick.winners, missing=missing, now=flow.now))


def _missing(total: int, parts: list[ResultEvent]):
    arrived = {r.part_id for r in parts}
    origin = next((r.origin for r in parts if r.origin is not None), None)
    selected = origin.decision.selected if origin is not None else []
    out = []
    for part_id in range(total):
        if part_id in arrived:
            continue
        ref = selected[part_id] if part_id < len(selected) else None
        out.append(missing_summary(part_id, ref.provider if ref else "unknown",
                                   ref.model if ref else "unknown"))
    return out


def _judge_task(origin: TaskEvent, spec: EnsembleSpec, ok: list[ResultEvent]) -> TaskEvent:
    messages = ensemble_messages(question_of(origin.messages),
                                 [(r.part_id, answer_text(r)) for r in ok])
    return judge_task(origin, judge=spec.judge, step=0, messages=messages)


def _judged(verdict: ResultEvent | None, ok: list[ResultEvent]) -> Pick:
    """The candidate the judge chose, mapped back to its part through the judge's prompt."""
    if verdict is None or verdict.status != "ok":
        return Pick(ok[0].text, [ok[0]])
    candidates = ok
    if verdict.origin is not None:
        by_part = {r.part_id: r for r in ok}
        listed = [by_part.get(part) for part in listed_parts(verdict.origin.messages)]
        if listed and all(listed):
            candidates = listed
    index = read_choice(verdict.text, len(candidates))
    chosen = candidates[index] if index is not None else ok[0]
    return Pick(chosen.text, [chosen])
