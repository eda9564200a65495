"""End-to-end benchmark: added latency, sustained throughput and CPU cost per request.

Starts the local stack (tansu broker, Redis, simulator, router, one openai worker,
aggregator, audit), then in one run measures the direct call (client → simulator) and the
pipeline (request event → response event) under the same open-loop load:

* added latency p50/p95/p99 at low load (pipeline minus direct);
* a sweep of offered load: latency percentiles per rate, the highest sustained rate with
  p99 added ≤ 50 ms, CPU-ms per request summed over every modelbus process, broker, Redis;
* the same at a 1.5 s provider latency.

Results go to ``bench/results/pipeline.json`` and ``bench/results/pipeline.png``.

    uv run python bench/pipeline_bench.py [--rates 50,100,200,400,600] [--step-seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from cpu import CpuMeter, find_redis_pids  # noqa: E402
from loadgen import Pipeline, direct  # noqa: E402

from modelbus_cli.stack import Stack  # noqa: E402

MODEL = "gpt-4o-mini"
RESULTS = Path(__file__).parent / "results"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95),
            "p99": pct(values, 99)}


def stack_fetch_wait_ms() -> int:
    from modelbus_runtime.settings import RuntimeSettings

    return RuntimeSettings().fetch_max_wait_ms


def set_latency(stack: Stack, ms: float) -> None:
    httpx.put(f"{stack.simulator_url}/_sim/models/{MODEL}", json={"latency_ms": ms}).raise_for_status()


def meter_for(stack: Stack) -> CpuMeter:
    pids = {c.name: c.proc.pid for c in stack.group.children if c.name != "simulator"}
    for pid in find_redis_pids(urlsplit(stack.redis_url).port or 6379):
        pids.setdefault(f"redis-{pid}", pid)
    return CpuMeter(pids)


async def measure(stack: Stack, args) -> dict:
    pipeline = Pipeline(stack.bootstrap)
    await pipeline.start()
    meter = meter_for(stack)
    out: dict = {"latency_ms": args.latency_ms}
    try:
        set_latency(stack, args.latency_ms)
        print("warming up…", flush=True)
        await pipeline.run(50, 2)
        await direct(stack.simulator_url, MODEL, 50, 2)

        print(f"low load: {args.low_rate} req/s for {args.low_seconds} s, direct then pipeline",
              flush=True)
        base = summary(await direct(stack.simulator_url, MODEL, args.low_rate, args.low_seconds))
        low = summary(await pipeline.run(args.low_rate, args.low_seconds))
        out["direct_low"] = base
        out["pipeline_low"] = low
        out["added_low"] = {q: low[q] - base[q] for q in ("p50", "p95", "p99")}
        print(f"  direct   p50 {base['p50']:.1f}  p95 {base['p95']:.1f}  p99 {base['p99']:.1f} ms")
        print(f"  pipeline p50 {low['p50']:.1f}  p95 {low['p95']:.1f}  p99 {low['p99']:.1f} ms")
        print(f"  added    p50 {out['added_low']['p50']:.1f}  p95 {out['added_low']['p95']:.1f}"
              f"  p99 {out['added_low']['p99']:.1f} ms", flush=True)

        before = meter.snapshot()
        await asyncio.sleep(5)
        idle = CpuMeter.delta(before, meter.snapshot())
        idle_per_s = sum(idle.values()) / 5
        out["idle_cpu_s_per_s"] = round(idle_per_s, 3)
        print(f"idle (no traffic): {idle_per_s:.2f} CPU-s per second, mostly consumers polling "
              f"the broker every {stack_fetch_wait_ms()} ms", flush=True)

        sweep = []
        for rate in args.rates:
            before = meter.snapshot()
            t0 = time.perf_counter()
            lat = await pipeline.run(rate, args.step_seconds, drain_s=15)
            elapsed = time.perf_counter() - t0
            cpu = CpuMeter.delta(before, meter.snapshot())
            offered = int(rate * args.step_seconds)
            busy = sum(cpu.values()) - idle_per_s * elapsed
            row = {"rate": rate, **summary(lat), "completed": len(lat), "offered": offered,
                   "cpu_ms_per_request": 1000 * sum(cpu.values()) / max(1, len(lat)),
                   "cpu_ms_per_request_above_idle": 1000 * max(0.0, busy) / max(1, len(lat)),
                   "cpu_by_process_s": {k: round(v, 3) for k, v in cpu.items()},
                   "wall_s": round(elapsed, 2)}
            row["added_p99"] = row["p99"] - base["p99"]
            sweep.append(row)
            print(f"  {rate:>5} req/s: p50 {row['p50']:.1f} p99 {row['p99']:.1f} ms, "
                  f"{len(lat)}/{offered} done, {row['cpu_ms_per_request']:.2f} CPU-ms/req "
                  f"({row['cpu_ms_per_request_above_idle']:.2f} above idle)", flush=True)
            if len(lat) < 0.9 * offered or row["p99"] > 2000:
                break  # saturated: higher rates only measure the queue
            await pipeline.quiesce()
        out["sweep"] = sweep
        ok = [r["rate"] for r in sweep if r["added_p99"] <= 50 and r["completed"] == r["offered"]]
        out["max_sustained_rps_p99_added_le_50ms"] = max(ok) if ok else 0

        if args.slow_ms:
            await pipeline.quiesce()
            set_latency(stack, args.slow_ms)
            print(f"provider at {args.slow_ms:.0f} ms: {args.slow_rate} req/s for "
                  f"{args.low_seconds} s", flush=True)
            slow_direct = summary(await direct(stack.simulator_url, MODEL, args.slow_rate,
                                               args.low_seconds))
            slow = summary(await pipeline.run(args.slow_rate, args.low_seconds, drain_s=20))
            out["slow"] = {"direct": slow_direct, "pipeline": slow,
                           "added": {q: slow[q] - slow_direct[q] for q in ("p50", "p99")}}
            print(f"  added p50 {out['slow']['added']['p50']:.1f}  "
                  f"p99 {out['slow']['added']['p99']:.1f} ms", flush=True)
    finally:
        await pipeline.stop()
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = result["sweep"]
    rates = [r["rate"] for r in sweep]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for q in ("p50", "p95", "p99"):
        ax1.plot(rates, [r[q] for r in sweep], marker="o", label=f"pipeline {q}")
    ax1.axhline(result["direct_low"]["p99"], color="grey", ls="--", label="direct p99 (low load)")
    ax1.axhline(result["direct_low"]["p99"] + 50, color="red", ls=":", label="direct p99 + 50 ms")
    ax1.set_yscale("log")
    ax1.set_xlabel("offered load (requests/s)")
    ax1.set_ylabel("end-to-end latency (ms, log)")
    ax1.set_title(f"latency vs load, provider at {result['latency_ms']:.0f} ms")
    ax1.legend(fontsize=8)
    ax2.plot(rates, [r["cpu_ms_per_request"] for r in sweep], marker="s", color="purple",
             label="all CPU")
    ax2.plot(rates, [r["cpu_ms_per_request_above_idle"] for r in sweep], marker="^",
             color="teal", label="above idle polling")
    ax2.axhline(4, color="red", ls=":", label="goal 4 CPU-ms")
    ax2.set_xlabel("offered load (requests/s)")
    ax2.set_ylabel("CPU-ms per request (all processes)")
    ax2.set_title("CPU cost per request")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--low-rate", type=float, default=20)
    parser.add_argument("--low-seconds", type=float, default=8)
    parser.add_argument("--rates", default="25,50,100,150,200,300,400,500")
    parser.add_argument("--step-seconds", type=float, default=6)
    parser.add_argument("--slow-ms", type=float, default=1500)
    parser.add_argument("--slow-rate", type=float, default=100)
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="modelbus-bench-"))
    stack = Stack(workdir)
    print("starting the stack…", flush=True)
    stack.start()
    try:
        result = asyncio.run(measure(stack, args))
    finally:
        stack.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pipeline.json").write_text(json.dumps(result, indent=2))
    plot(result, RESULTS / "pipeline.png")
    added = result["added_low"]
    best = max(result["sweep"], key=lambda r: r["rate"]) if result["sweep"] else {}
    print("\n== pipeline benchmark ==")
    print(f"added latency at {args.low_rate:.0f} req/s: p50 {added['p50']:.1f} ms, "
          f"p95 {added['p95']:.1f} ms, p99 {added['p99']:.1f} ms   (goal p50 ≤ 5, p99 ≤ 15)")
    print(f"max sustained with p99 added ≤ 50 ms: "
          f"{result['max_sustained_rps_p99_added_le_50ms']:.0f} req/s   (goal ≥ 500)")
    cpu = statistics.median(r["cpu_ms_per_request"] for r in result["sweep"])
    busy = statistics.median(r["cpu_ms_per_request_above_idle"] for r in result["sweep"])
    print(f"CPU per request, median over the sweep: {cpu:.2f} ms, {busy:.2f} ms above idle "
          f"polling   (goal ≤ 4)")
    if best:
        print(f"CPU by process at {best['rate']:.0f} req/s (s): {best['cpu_by_process_s']}")
    print(f"results: {RESULTS / 'pipeline.json'}, plot: {RESULTS / 'pipeline.png'}")


if __name__ == "__main__":
    main()
