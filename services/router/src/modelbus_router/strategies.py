"""Strategies: put a route's eligible targets in the order they should serve.

Every strategy returns the eligible targets ordered best first plus, for those it passed
over, why (recorded on the decision). The planner then takes the first (single, fallback,
weighted, latency, cost), the first N (ensemble) or all in order (cascade tiers).

* ``weighted`` — a session keeps the target remembered for it; otherwise a weighted draw
  seeded by the request id, so a redelivered request draws the same target;
* ``latency`` — targets with fewer than ``min_samples`` fresh samples are explored first;
  then the fastest by the route's metric, except that the current leader keeps the traffic
  until a challenger is faster by more than the hysteresis factor (1.2x), so two models of
  similar speed do not flap;
* ``cost`` — cheapest estimated cost for this request first.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from modelbus_runtime.model_stats import Stats

from modelbus_router.catalog import CatalogModel
from modelbus_router.routes import ServeSpec, TargetSpec


@dataclass(frozen=True)
class StrategyInputs:
    """What the strategies read from outside the policy (gathered by the engine)."""

    stats: dict[tuple[str, str], Stats] = field(default_factory=dict)
    sticky: str | None = None
    leader: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0


Ordered = tuple[list[TargetSpec], dict[str, str]]


def order(
    spec: ServeSpec,
    eligible: list[TargetSpec],
    catalog: dict[str, CatalogModel],
    inputs: StrategyInputs,
    draw_key: str,
) -> Ordered:
    if spec.strategy == "weighted":
        return _weighted(eligible, inputs.sticky, draw_key)
    if spec.strategy == "latency":
        return _latency(spec, eligible, catalog, inputs)
    if spec.strategy == "cost":
        return _cheapest(eligible, catalog, inputs)
    return list(eligible), {}


def _weighted(eligible: list[TargetSpec], sticky: str | None, draw_key: str) -> Ordered:
    chosen = next((t for t in eligible if t.model == sticky), None)
    why = "weighted: session sticks to another target"
    if chosen is None:
        total = sum(t.weight for t in eligible)
        point = (zlib.crc32(draw_key.encode()) / 0xFFFFFFFF) * total
        chosen = eligible[-1]
        for target in eligible:
            point -= target.weight
            if point < 0:
                chosen = target
                break
        why = "weighted: not drawn"
    rest = [t for t in eligible if t is not chosen]
    return [chosen, *rest], {t.model: why for t in rest}


def _metric(spec: ServeSpec, stats: Stats | None) -> float | None:
    if stats is None or stats.samples < spec.min_samples:
        return None
    if spec.latency_metric == "ms_per_output_token" and stats.ms_per_output_token is not None:
        return stats.ms_per_output_token
    return stats.latency_ms


def _latency(
    spec: ServeSpec,
    eligible: list[TargetSpec],
    catalog: dict[str, CatalogModel],
    inputs: StrategyInputs,
) -> Ordered:
    scores: dict[str, float | None] = {}
    for target in eligible:
        model = catalog[target.model]
        scores[target.model] = _metric(spec, inputs.stats.get((model.provider, model.model)))
    unknown = [t for t in eligible if scores[t.model] is None]
    known = sorted((t for t in eligible if scores[t.model] is not None),
                   key=lambda t: scores[t.model])
    if unknown:
        first, reason = unknown[0], "latency: exploring {} (too few samples)"
    else:
        first = known[0]
        incumbent = next((t for t in known if t.model == inputs.leader), None)
        if incumbent is not None and scores[incumbent.model] <= scores[first.model] * spec.hysteresis:
            first = incumbent
        reason = "latency: {} leads"
    rest = [t for t in [*unknown, *known] if t is not first]
    why = {}
    for t in rest:
        score = scores[t.model]
        shown = f"{score:.1f}" if score is not None else "unknown"
        why[t.model] = reason.format(first.model) + f" ({spec.latency_metric} {shown})"
    return [first, *rest], why


def _cheapest(
    eligible: list[TargetSpec], catalog: dict[str, CatalogModel], inputs: StrategyInputs
) -> Ordered:
    def cost(t: TargetSpec) -> float:
        return catalog[t.model].cost_usd(inputs.input_tokens, inputs.output_tokens)

    ranked = sorted(eligible, key=cost)  # stable: policy order breaks ties
    best = cost(ranked[0])
    return ranked, {
        t.model: f"cost: ~{cost(t):.6f} USD vs ~{best:.6f} USD" for t in ranked[1:]
    }
