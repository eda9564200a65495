"""Cost of one routing decision (resolve + constraints + strategy + plan + decision record)
with a 50-route policy, in process, no broker and no Redis.

    uv run python bench/router_bench.py [--runs 20000]

Prints the median and p99 microseconds per decision over many runs, per strategy and overall.
"""

from __future__ import annotations

import argparse
import statistics
import time

import yaml
from modelbus_router.planner import plan
from modelbus_router.policy import parse_policy
from modelbus_router.strategies import StrategyInputs
from modelbus_runtime.model_stats import Stats
from modelbus_schemas import RequestEvent

PROVIDERS = ["openai", "anthropic", "gemini", "selfhosted"]
STRATEGIES = ["single", "fallback", "weighted", "latency", "cost", "ensemble", "cascade", "chain"]


def build_policy_text(routes: int = 50) -> str:
    catalog = {
        f"m{i}": {"provider": PROVIDERS[i % 4], "model": f"model-{i}",
                  "context_window": 32_000 * (1 + i % 4), "input_usd_per_mtok": 0.1 * (i + 1),
                  "output_usd_per_mtok": 0.4 * (i + 1),
                  "regions": ["*"] if i % 3 else ["eu", "us"]}
        for i in range(12)
    }
    table = {}
    for r in range(routes):
        strategy = STRATEGIES[r % len(STRATEGIES)]
        ids = [f"m{(r + k) % 12}" for k in range(3)]
        route: dict = {"strategy": strategy}
        if strategy == "chain":
            route["stages"] = [{"name": f"s{k}", "model": m} for k, m in enumerate(ids)]
        else:
            route["targets"] = [{"model": m, "weight": k + 1} for k, m in enumerate(ids)]
        if strategy == "cascade":
            route["targets"][0]["check"] = {"kind": "min_length", "min_chars": 20}
        route["rules"] = [
            {"name": "restricted", "when": {"data_class": ["restricted"]},
             "targets": [{"model": "m3"}, {"model": "m7"}], "strategy": "fallback"},
            {"name": "eu", "when": {"region": ["eu"], "metadata": {"tier": "gold"}},
             "targets": [{"model": ids[0]}]},
        ]
        if r % 5 == 0:
            route["cache"] = {"ttl_s": 300}
        table[f"task-{r}"] = route
    return yaml.safe_dump({"catalog": catalog, "routes": table,
                           "budgets": [{"scope": "team", "limit_usd": 10}]})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20_000)
    args = parser.parse_args()
    policy = parse_policy(build_policy_text(50))
    assert len(policy.routes) == 50
    stats = {(m.provider, m.model): Stats(100.0 + i * 7, 2.0, 20)
             for i, m in enumerate(policy.catalog.values())}
    inputs = StrategyInputs(stats=stats, leader="m1")
    text = "Summarise the following paragraph about event logs and their ordering. " * 8
    requests = [
        RequestEvent(request_id=f"bench-{i}", task=f"task-{i % 50}",
                     messages=[{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": text}],
                     caller={"tenant": "acme", "team": "support"},
                     data_class="restricted" if i % 10 == 0 else "internal",
                     region="eu" if i % 7 == 0 else None, metadata={"tier": "gold"})
        for i in range(500)
    ]
    for request in requests:  # warm up
        plan(request, policy, inputs)
    per_strategy: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    overall: list[float] = []
    for i in range(args.runs):
        request = requests[i % len(requests)]
        started = time.perf_counter()
        routed = plan(request, policy, inputs)
        elapsed = (time.perf_counter() - started) * 1e6
        overall.append(elapsed)
        per_strategy[policy.routes[request.task].strategy].append(elapsed)
        assert routed.tasks
    overall.sort()
    print(f"routing decision, 50-route policy, {args.runs} runs (no broker, no Redis):")
    print(f"  all strategies: median {statistics.median(overall):.1f} us, "
          f"p99 {overall[int(len(overall) * 0.99)]:.1f} us")
    for name, samples in per_strategy.items():
        samples.sort()
        print(f"  {name:<9} median {statistics.median(samples):.1f} us")


if __name__ == "__main__":
    main()
