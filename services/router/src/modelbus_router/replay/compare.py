"""One recorded request against the candidate policy's decision: what changes, what it costs.

Cost under the candidate is an estimate built from what was recorded: each model the
candidate would call is priced from the candidate's catalog with the recorded token usage
of that model when it served the request then, else with the request's recorded input
tokens and the mean recorded output tokens (the same prompt, the answer assumed as long as
the old one). A request with no recorded usage (refused then, served now) is priced with
the planner's own estimate (its input count and the route's expected output tokens).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from modelbus_router.catalog import surface_of
from modelbus_router.policy import Policy
from modelbus_router.reachable import catalog_entry
from modelbus_router.replay.decide import REFUSED, DryDecision
from modelbus_router.replay.recorded import Recorded
from modelbus_router.tokens import input_tokens_for

COST_DIGITS = 10  # as the workers round a call's cost


@dataclass(frozen=True)
class Comparison:
    request_id: str
    tenant: str
    team: str
    task: str
    data_class: str
    then_outcome: str
    now_outcome: str
    then_policy_version: str | None
    then_models: tuple[str, ...]
    now_models: tuple[str, ...]
    then_strategy: str | None
    now_strategy: str | None
    now_error_code: str | None
    rejected: tuple[tuple[str, str], ...]  # (provider/model, reason) under the candidate
    then_cost_usd: float
    now_cost_usd: float
    new_reach: tuple[str, ...]  # models the request would now reach that it did not then
    new_surfaces: tuple[str, ...]  # surfaces (hosted, self_hosted) it would newly reach
    redacted: bool
    purged: bool

    @property
    def model_changed(self) -> bool:
        return self.then_models[:1] != self.now_models[:1]

    @property
    def class_change(self) -> str | None:
        if self.then_outcome in (self.now_outcome, "unknown"):
            return None
        return f"{self.then_outcome}->{self.now_outcome}"

    @property
    def surface_changed(self) -> bool:
        return bool(self.new_reach)

    def as_dict(self) -> dict:
        return {**asdict(self), "model_changed": self.model_changed,
                "class_change": self.class_change}


def _serving(decision: DryDecision) -> list[str]:
    """The models the candidate would call for the request: every chain stage, every
    ensemble part, else the first target (fallbacks and cascade escalations only on
    failure or a failed check)."""
    if decision.decision is not None and decision.decision.strategy == "chain":
        return decision.selected
    return list(decision.parts)


def estimate_cost(policy: Policy, recorded: Recorded, decision: DryDecision) -> float:
    if decision.outcome == REFUSED:
        return 0.0
    usage = recorded.then.usage
    if not usage:
        return round(decision.estimated_cost_usd, COST_DIGITS)
    by_model = {f"{u.provider}/{u.model}": u for u in usage}
    first = usage[0]
    mean_out = round(sum(u.output_tokens for u in usage) / len(usage))
    total = 0.0
    for ref in _serving(decision):
        provider, _, model = ref.partition("/")
        entry = catalog_entry(policy.catalog, provider, model)
        if entry is None:
            continue
        seen = by_model.get(ref)
        if seen is not None:
            tokens_in, tokens_out = seen.input_tokens, seen.output_tokens
        elif provider == first.provider:
            tokens_in, tokens_out = first.input_tokens, mean_out
        else:  # another provider counts the same prompt its own way
            estimated = decision.decision.estimated_input_tokens if decision.decision else None
            tokens_in = input_tokens_for(provider, estimated or first.input_tokens)
            tokens_out = mean_out
        total += round(entry.cost_usd(tokens_in, tokens_out), COST_DIGITS)
    return round(total, COST_DIGITS)


def compare(policy: Policy, recorded: Recorded, decision: DryDecision) -> Comparison:
    request, then = recorded.request, recorded.then
    then_reach = set(then.selected)
    new_reach = tuple(r for r in decision.reach if r not in then_reach)
    then_surfaces = {surface_of(r.partition("/")[0]) for r in then_reach}
    new_surfaces = tuple(sorted({surface_of(r.partition("/")[0]) for r in new_reach}
                                - then_surfaces))
    return Comparison(
        request_id=request.request_id,
        tenant=request.caller.tenant,
        team=recorded.team,
        task=request.task,
        data_class=request.data_class.value,
        then_outcome=then.outcome,
        now_outcome=decision.outcome,
        then_policy_version=then.policy_version,
        then_models=tuple(then.selected),
        now_models=tuple(decision.selected),
        then_strategy=then.strategy,
        now_strategy=decision.decision.strategy if decision.decision else None,
        now_error_code=decision.error_code.value if decision.error_code else None,
        rejected=tuple((f"{r.provider}/{r.model}", r.reason)
                       for r in (decision.decision.rejected if decision.decision else [])),
        then_cost_usd=round(then.cost_usd, COST_DIGITS),
        now_cost_usd=estimate_cost(policy, recorded, decision),
        new_reach=new_reach if then.outcome != "unknown" else (),
        new_surfaces=new_surfaces if then.outcome != "unknown" else (),
        redacted=recorded.redacted,
        purged=recorded.purged,
    )
