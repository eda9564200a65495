"""Which requests stream: the router's part of streaming (``RequestEvent.stream``).

A request that asks for streaming streams when its plan can show an answer as it is
produced and nothing checks that answer whole before the caller may see it:

* ``single`` and ``fallback``: the plan and its one task stream (the worker keeps the flag
  on the fallbacks it forwards);
* ``chain``: the plan streams; the aggregator marks the last stage's task when it
  dispatches it (a one-stage chain's only task is marked here, it is the last stage);
* ``cascade`` and ``ensemble``: nothing streams. A cascade tier's answer is final only once
  its check passed, and an ensemble's only once the parts are aggregated (or judged); the
  caller gets the final response.

Held back (the plan does not stream, so no stream event can show what the final check
would refuse or rewrite):

* an output guard in ``validate`` or ``mutate`` mode (``json_schema``, ``regex``,
  ``deny_list``, ``pii``): the aggregator refuses or rewrites the whole answer. Guards in
  ``flag`` mode only record a finding, so they do not hold a stream back;
* a JSON ``response_format`` (``json_object``, ``json_schema``): the worker refuses text
  that does not parse as JSON (``output_invalid``), and a schema is checked on the whole
  document;
* placeholders the final response restores (input personal data redacted with
  ``restore: true``): the model only ever writes placeholders, so its deltas would differ
  from the final text the caller gets;
* an ``embed`` request: vectors come whole, there is no text to stream.

Why a streaming request did not stream is recorded on the routing decision as a finding
of the ``stream`` guard (``flag``/``flagged``, the reasons in ``detail``): it travels with
every task, so the audit's lineage shows it. Pure: no I/O, the same for live routing and
for replay.
"""

from __future__ import annotations

import dataclasses

from modelbus_schemas import GuardrailFinding, RequestEvent

from modelbus_router.guardrails.spec import OutputGuards

STREAMING_MODES = ("single", "fallback", "chain")
#: The guard name of the finding that records why a streaming request did not stream.
STREAM_GUARD = "stream"


def held_back(request: RequestEvent, output: OutputGuards,
              restore_map: dict[str, str]) -> list[str]:
    """Why the answer must be checked whole before the caller sees any of it (empty: it
    may stream). Reasons name guards and formats, never content."""
    if request.operation == "embed":
        return ["embed answers are vectors, sent whole"]
    reasons = []
    rules = [("json_schema", output.json_schema), ("deny_list", output.deny_list),
             ("pii", output.pii), *((f"regex:{r.name}", r) for r in output.regex)]
    for name, rule in rules:
        if rule is not None and rule.mode in ("validate", "mutate"):
            reasons.append(f"output guard {name} ({rule.mode})")
    fmt = request.params.response_format
    if fmt is not None and fmt.wants_json:
        reasons.append(f"response_format {fmt.type}")
    if restore_map:
        reasons.append("placeholders restored in the final response")
    return reasons


def with_stream(routed, request: RequestEvent, output: OutputGuards,
                restore_map: dict[str, str]):
    """``routed`` (a :class:`~modelbus_router.planner.RoutedPlan`) with its plan and the
    task whose answer is final marked to stream, when the request asks and nothing holds
    it back; else as it was, with the reasons recorded when the request asked."""
    if not request.stream or not routed.tasks:
        return routed
    mode = routed.tasks[0].plan.mode
    reasons = held_back(request, output, restore_map)
    if mode not in STREAMING_MODES:
        reasons = [f"{mode} plans answer once the final step is decided", *reasons]
    if reasons:
        finding = GuardrailFinding(
            guard=STREAM_GUARD, stage="output", mode="flag", action="flagged",
            detail=("not streamed: " + "; ".join(reasons))[:512])
        decision = routed.decision.model_copy(
            update={"guardrails": [*routed.decision.guardrails, finding]})
        tasks = [t.model_copy(update={"decision": decision}) for t in routed.tasks]
        return dataclasses.replace(routed, decision=decision, tasks=tasks)
    tasks = []
    for task in routed.tasks:
        plan = task.plan.model_copy(update={"stream": True})
        final = mode != "chain" or len(plan.chain or ()) == 1
        tasks.append(task.model_copy(update={"plan": plan, "stream": final}))
    return dataclasses.replace(routed, tasks=tasks)
