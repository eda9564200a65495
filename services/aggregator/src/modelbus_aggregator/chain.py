"""Chain flow: sequential stages, each stage's input built from earlier outputs.

Stage ``s`` answers as part 0, step ``s``. Its output is checkpointed (the fan-in state keeps
every stage's result), then stage ``s + 1`` is dispatched with an input built by the
stage's context transform (:mod:`transforms`) from the original request (kept from stage
0's task) and earlier outputs. A failed stage is re-dispatched from its own checkpointed
input — earlier stages are never re-run — up to ``max_retries`` hops; after that the
response is ``partial`` with the last good stage output (``error`` if no stage succeeded).
A streaming chain's last stage (the only one that streams, :func:`steps.streams`) is not
retried once its output began to leave modelbus (``stream_interrupted``, or any stream
event published): the response then carries that stage's error.
``path`` lists the stages that ran; ``models`` every stage model that answered.
"""

from __future__ import annotations

from modelbus_schemas import ChainStage, ErrorCode, ErrorInfo, ResultEvent

from modelbus_aggregator.actions import Action, Dispatch, FlowInput, Respond
from modelbus_aggregator.judge import question_of
from modelbus_aggregator.responses import build_response, missing_summary
from modelbus_aggregator.steps import hop_of, step_task
from modelbus_aggregator.transforms import stage_messages


def decide(stages: list[ChainStage], flow: FlowInput, max_retries: int = 1) -> Action:
    outputs = {step: r for (part, step), r in flow.results.items() if part == 0}
    if not outputs:
        return None
    stage = max(outputs)
    latest = outputs[stage]
    path = [stages[s].name for s in range(min(stage + 1, len(stages)))]
    if flow.final:
        return _stop(stages, outputs, flow, path, timed_out=True)
    if latest.status != "ok":
        incoming = flow.incoming
        if incoming is None or (incoming.part_id, incoming.plan.step) != (0, stage):
            return None  # a stale redelivery: the failed stage's own result decides
        origin = incoming.origin
        hop = hop_of(origin, max_retries) if origin is not None else max_retries
        if (origin is not None and incoming.status == "error" and hop < max_retries
                and not _streamed(incoming)):
            return Dispatch(step_task(origin, target=stages[stage].target, step=stage,
                                      hop=hop + 1))
        return _stop(stages, outputs, flow, path, timed_out=False)
    if stage + 1 >= len(stages):
        answered = [outputs[s] for s in sorted(outputs)]
        return Respond(build_response(list(flow.results.values()), status="ok",
                                      output=latest.text, answered=answered, path=path,
                                      now=flow.now))
    if latest.origin is None:
        return _stop(stages, outputs, flow, path, timed_out=False)
    nxt = stages[stage + 1]
    messages = stage_messages(nxt, sources(stages, outputs, flow))
    return Dispatch(step_task(latest.origin, target=nxt.target, step=stage + 1,
                              messages=messages))


def _streamed(result: ResultEvent) -> bool:
    """Output of this stage already left modelbus as stream events: a retry would show the
    caller a second answer after part of the first, so the stage is not retried."""
    interrupted = result.error is not None and result.error.code == ErrorCode.STREAM_INTERRUPTED
    return interrupted or result.stream_events > 0


def sources(stages: list[ChainStage], outputs: dict[int, ResultEvent],
            flow: FlowInput) -> dict[str, str]:
    """What a stage may name in ``inputs``: request, previous, or an earlier stage."""
    first = flow.origin or outputs[min(outputs)].origin
    found = {"request": question_of(first.messages) if first is not None else ""}
    done = [s for s in sorted(outputs) if outputs[s].status == "ok"]
    for s in done:
        found[stages[s].name] = outputs[s].text or ""
    if done:
        found["previous"] = outputs[done[-1]].text or ""
    return found


def _stop(stages, outputs: dict[int, ResultEvent], flow: FlowInput, path, *, timed_out: bool):
    stage = max(outputs)
    latest = outputs[stage]
    good = [outputs[s] for s in sorted(outputs) if outputs[s].status == "ok"]
    everything = list(flow.results.values())
    missing = []
    pending = stage + 1 if latest.status == "ok" else stage
    if timed_out and pending < len(stages):
        target = stages[pending].target
        missing = [missing_summary(0, target.provider, target.model, step=pending)]
    error = (ErrorInfo(code=ErrorCode.DEADLINE_EXCEEDED, retryable=True,
                       message=f"chain deadline passed at stage {stages[pending].name!r}"
                       if pending < len(stages) else "chain deadline passed")
             if timed_out else (latest.error or ErrorInfo(
                 code=ErrorCode.INTERNAL, message="chain stopped without an origin task")))
    if not good:
        return Respond(build_response(everything, status="error", error=error, path=path,
                                      missing=missing, now=flow.now))
    return Respond(build_response(everything, status="partial", output=good[-1].text,
                                  answered=good, error=error, path=path, missing=missing,
                                  now=flow.now))
