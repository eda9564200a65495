"""What the whole stack costs at rest, by process, and what a quiet spell costs the next call.

One fresh stack (``bench/peers``' modelbus stack: broker, Redis, router, an openai worker on
the simulator answering at once, aggregator, audit on SQLite, gateway). After a warm-up
(requests through the gateway, then ``--settle`` seconds of quiet so every consumer reaches
its idle fetch pacing) the CPU of every process is read over ``--seconds``; then single
calls through the gateway each after ``--quiet`` seconds of quiet give the added latency of
the first call after a quiet spell. Prints a table and writes ``bench/results/idle.json``.

    uv run python -m bench.idle_bench [--seconds 20] [--settle 8] [--quiet 5] [--calls 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path

from bench.cpu import CpuMeter
from bench.peers import mock, modelbus_stack
from bench.peers.load import HttpTarget

RESULTS = Path(__file__).parent / "results"


async def measure(args) -> dict:
    sim = mock.start(Path(tempfile.mkdtemp(prefix="modelbus-idle-")))
    mb = modelbus_stack.start(sim.simulator_url)
    target = HttpTarget("gateway", mb.gateway_url, mb.key, "summarize")
    await target.start()
    try:
        pids = {**mb.pids, "simulator": sim.group.children[0].proc.pid}
        for _ in range(20):
            await target.call()
        print(f"warm; {args.settle:.0f} s of quiet, then {args.seconds:.0f} s measured",
              flush=True)
        await asyncio.sleep(args.settle)
        meter = CpuMeter({k: v for k, v in pids.items() if k != "simulator"})
        before = meter.snapshot()
        await asyncio.sleep(args.seconds)
        cpu = CpuMeter.delta(before, meter.snapshot())
        by_process = {name: round(s / args.seconds, 4) for name, s in sorted(cpu.items())}
        after_quiet = []
        for n in range(args.calls):
            await asyncio.sleep(args.quiet)
            after_quiet.append(round(await target.call(), 1))
            print(f"call {n + 1}/{args.calls} after {args.quiet:.0f} s quiet: "
                  f"{after_quiet[-1]} ms", flush=True)
        return {"idle_cores": round(sum(by_process.values()), 4), "by_process": by_process,
                "seconds": args.seconds, "quiet_s": args.quiet,
                "first_call_after_quiet_ms": after_quiet,
                "first_call_after_quiet_median_ms": statistics.median(after_quiet)}
    finally:
        await target.stop()
        mb.stop()
        sim.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--settle", type=float, default=8.0)
    p.add_argument("--quiet", type=float, default=5.0)
    p.add_argument("--calls", type=int, default=8)
    args = p.parse_args()
    result = asyncio.run(measure(args))
    print(f"\nidle, whole stack: {result['idle_cores']:.3f} cores (goal <= 0.05)")
    for name, cores in result["by_process"].items():
        print(f"  {name:<12} {cores:.4f}")
    print(f"first call after {args.quiet:.0f} s quiet (gateway, simulator answers at once): "
          f"median {result['first_call_after_quiet_median_ms']} ms, "
          f"all {result['first_call_after_quiet_ms']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "idle.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
