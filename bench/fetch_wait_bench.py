"""The broker-poll trade-off: added latency against CPU for each consumer fetch wait.

The embedded broker (tansu) answers a fetch when its wait (``fetch.max.wait.ms``) runs out,
not when a record arrives, so every hop of the pipeline waits for the next poll. A short
wait buys latency with CPU spent polling; a long one the reverse. (Apache Kafka completes a
waiting fetch as soon as data arrives, so there a long wait costs no latency.) For each
wait this starts a fresh stack with ``MODELBUS_FETCH_MAX_WAIT_MS`` set for every service and
measures, in one run:

* added latency p50/p99 at low load (pipeline minus the direct call to the simulator);
* CPU-seconds per second with no traffic (the polling floor), every process summed;
* CPU-ms per request at a steady rate, all of it and above the idle floor.

Results: ``bench/results/fetch_wait.json`` and ``fetch_wait.png``.

    uv run python bench/fetch_wait_bench.py [--waits 2,5,10,25] [--rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cpu import CpuMeter
from loadgen import Pipeline, direct
from modelbus_cli.stack import Stack
from pipeline_bench import MODEL, RESULTS, meter_for, set_latency, summary


async def measure(stack: Stack, args) -> dict:
    pipeline = Pipeline(stack.bootstrap)
    await pipeline.start()
    try:
        set_latency(stack, args.latency_ms)
        await pipeline.run(20, 2)
        await direct(stack.simulator_url, MODEL, 20, 1)
        base = summary(await direct(stack.simulator_url, MODEL, args.low_rate, args.seconds))
        low = summary(await pipeline.run(args.low_rate, args.seconds))
        await pipeline.quiesce()
        meter = meter_for(stack)
        before = meter.snapshot()
        await asyncio.sleep(args.idle_seconds)
        idle = sum(CpuMeter.delta(before, meter.snapshot()).values()) / args.idle_seconds
        before, t0 = meter.snapshot(), time.perf_counter()
        done = await pipeline.run(args.rate, args.seconds, drain_s=15)
        elapsed = time.perf_counter() - t0
        cpu = sum(CpuMeter.delta(before, meter.snapshot()).values())
    finally:
        await pipeline.stop()
    n = max(1, len(done))
    return {
        "added_p50_ms": low["p50"] - base["p50"], "added_p99_ms": low["p99"] - base["p99"],
        "idle_cpu_s_per_s": idle, "completed": len(done),
        "offered": int(args.rate * args.seconds),
        "cpu_ms_per_request": 1000 * cpu / n,
        "cpu_ms_per_request_above_idle": 1000 * max(0.0, cpu - idle * elapsed) / n,
    }


def plot(rows: list[dict], rate: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    waits = [r["fetch_wait_ms"] for r in rows]
    fig, ax1 = plt.subplots(figsize=(7, 4.2))
    ax1.plot(waits, [r["added_p50_ms"] for r in rows], marker="o", label="added p50 (ms)")
    ax1.plot(waits, [r["added_p99_ms"] for r in rows], marker="o", label="added p99 (ms)")
    ax1.set_xlabel("consumer fetch wait (ms)")
    ax1.set_ylabel("added latency at low load (ms)")
    ax2 = ax1.twinx()
    ax2.plot(waits, [r["cpu_ms_per_request"] for r in rows], marker="s", color="purple",
             ls="--", label=f"CPU-ms/request at {rate:.0f} req/s")
    ax2.plot(waits, [1000 * r["idle_cpu_s_per_s"] for r in rows], marker="^", color="grey",
             ls="--", label="idle CPU-ms per second")
    ax2.set_ylabel("CPU")
    lines = ax1.get_legend_handles_labels()
    more = ax2.get_legend_handles_labels()
    ax1.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper center")
    ax1.set_title("broker poll wait: latency against CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waits", default="2,5,10,25")
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--low-rate", type=float, default=20)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--idle-seconds", type=float, default=4)
    args = parser.parse_args()
    rows = []
    for wait in [int(w) for w in args.waits.split(",")]:
        os.environ["MODELBUS_FETCH_MAX_WAIT_MS"] = str(wait)
        stack = Stack(Path(tempfile.mkdtemp(prefix=f"modelbus-wait{wait}-")))
        print(f"fetch wait {wait} ms: starting a stack…", flush=True)
        stack.start()
        try:
            row = {"fetch_wait_ms": wait, **asyncio.run(measure(stack, args))}
        finally:
            stack.stop()
        rows.append(row)
        print(f"  added p50 {row['added_p50_ms']:.1f} p99 {row['added_p99_ms']:.1f} ms; "
              f"idle {row['idle_cpu_s_per_s']:.2f} CPU-s/s; at {args.rate:.0f} req/s "
              f"{row['cpu_ms_per_request']:.2f} CPU-ms/req "
              f"({row['cpu_ms_per_request_above_idle']:.2f} above idle), "
              f"{row['completed']}/{row['offered']} done", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fetch_wait.json").write_text(json.dumps(rows, indent=2))
    plot(rows, args.rate, RESULTS / "fetch_wait.png")
    print(f"results: {RESULTS / 'fetch_wait.json'}, plot: {RESULTS / 'fetch_wait.png'}")


if __name__ == "__main__":
    main()
