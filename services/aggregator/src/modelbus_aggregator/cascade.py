"""Cascade flow: the cheap tier first; the tier's check decides whether to escalate.

Tier ``t`` answers as part 0, step ``t``. Its check (:mod:`checks`) passes → respond with
that answer; fails (or the tier errored) → dispatch tier ``t + 1`` built from the answer's
origin task. A ``judge`` check dispatches a judge task (part 1, step ``t``) and waits for
its PASS/FAIL; a failed judge call counts as FAIL. When no tier is left the last answer
stands if it succeeded; if it failed, the best earlier answer is returned as ``partial``
(with the error), else the response is an error. ``path`` lists the tiers that ran, in
order. When the deadline passes mid-cascade the best answer so far is ``partial``.
"""

from __future__ import annotations

from modelbus_schemas import CascadeTier, ErrorCode, ErrorInfo, ResultEvent

from modelbus_aggregator.actions import Action, Dispatch, FlowInput, Respond
from modelbus_aggregator.checks import run_check
from modelbus_aggregator.judge import check_messages, question_of, read_pass
from modelbus_aggregator.responses import build_response, missing_summary
from modelbus_aggregator.steps import judge_task, step_task


def decide(tiers: list[CascadeTier], flow: FlowInput) -> Action:
    answers = {step: r for (part, step), r in flow.results.items() if part == 0}
    if not answers:
        return None
    tier = max(answers)
    answer = answers[tier]
    path = [tiers[s].target.ref() for s in range(min(tier + 1, len(tiers)))]
    if flow.final:
        return _give_up(tiers, answers, flow, path, timed_out=True)
    passed = _passes(tiers[tier], answer, flow.results.get((1, tier)))
    if passed is None:
        check = tiers[tier].check
        return Dispatch(judge_task(
            answer.origin, judge=check.judge, step=tier,
            messages=check_messages(question_of(answer.origin.messages), answer.text or "",
                                    check.judge_prompt)))
    if passed:
        return Respond(_respond_ok(answer, flow, path))
    if tier + 1 < len(tiers) and answer.origin is not None:
        return Dispatch(step_task(answer.origin, target=tiers[tier + 1].target, step=tier + 1))
    return _give_up(tiers, answers, flow, path, timed_out=False)


def _passes(tier: CascadeTier, answer: ResultEvent, verdict: ResultEvent | None) -> bool | None:
    """True/False, or None when a judge must be asked first."""
    if answer.status != "ok":
        return False
    check = tier.check
    if check is None:
        return True
    if check.kind == "judge":
        if verdict is not None:
            return verdict.status == "ok" and read_pass(verdict.text, check.threshold)
        if check.judge is None or answer.origin is None:
            return True  # nobody to ask: the policy gave no judge; the answer stands
        return None
    outcome = run_check(check, answer)
    return bool(outcome and outcome.passed)


def _respond_ok(answer: ResultEvent, flow: FlowInput, path: list[str]):
    return build_response(list(flow.results.values()), status="ok", output=answer.text,
                          answered=[answer], path=path, now=flow.now)


def _give_up(tiers, answers: dict[int, ResultEvent], flow: FlowInput, path, *, timed_out: bool):
    tier = max(answers)
    last = answers[tier]
    everything = list(flow.results.values())
    if last.status == "ok" and not timed_out:
        return Respond(_respond_ok(last, flow, path))
    best = next((answers[s] for s in sorted(answers, reverse=True)
                 if answers[s].status == "ok"), None)
    missing = []
    if timed_out and tier + 1 < len(tiers) and last.status == "ok":
        target = tiers[tier + 1].target
        missing = [missing_summary(0, target.provider, target.model, step=tier + 1)]
    error = (ErrorInfo(code=ErrorCode.DEADLINE_EXCEEDED, retryable=True,
                       message=f"cascade deadline passed at tier {tier}")
             if timed_out else last.error)
    if best is None:
        return Respond(build_response(everything, status="error", error=error, path=path,
                                      missing=missing, now=flow.now))
    return Respond(build_response(everything, status="partial", output=best.text,
                                  answered=[best], error=error, path=path, missing=missing,
                                  now=flow.now))
