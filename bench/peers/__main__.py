"""``python -m bench.peers [--quick]``: modelbus side by side with the LiteLLM proxy.

Levels, in order: interleaved one-at-a-time latency; closed loops of 1/8/32/64 callers;
256 callers with the provider taking 1.5 s; then each stack's idle CPU over 10 s. The
LiteLLM proxies (one worker, and one worker per core) stay up for the whole run and idle at
zero CPU between their turns; the modelbus stack is started fresh for each level (the
embedded broker's cost per fetch grows with everything produced since it started, see
``bench/pipeline_bench.py``), and is down while the others are measured, so its idle
polling is not billed to them. ``--one-stack`` keeps one modelbus stack for every level.

Writes ``bench/results/peers.json``, ``peers.png`` and ``peers.md`` (the tables of
``docs/performance.md``) and prints the table with ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

from modelbus_cli.processes import ProcessGroup

from bench.peers import levels, litellm_proxy, mock, modelbus_stack, report
from bench.peers.load import HttpTarget, KafkaTarget, closed_loop

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    p.add_argument("--levels", default="1,8,32,64", help="closed-loop callers")
    p.add_argument("--seconds", type=float, default=10.0, help="per target and level")
    p.add_argument("--rounds", type=int, default=300, help="one-at-a-time requests per target")
    p.add_argument("--slow-callers", type=int, default=256)
    p.add_argument("--slow-seconds", type=float, default=12.0)
    p.add_argument("--idle-seconds", type=float, default=10.0)
    p.add_argument("--workers", default=f"1,{os.cpu_count() or 1}",
                   help="LiteLLM configurations, by worker processes")
    p.add_argument("--no-litellm", action="store_true")
    p.add_argument("--one-stack", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.levels, args.seconds, args.rounds = "1,8", 2.0, 20
        args.slow_callers, args.slow_seconds, args.idle_seconds = 32, 4.0, 3.0
        args.workers, args.one_stack = "1", True
    args.levels = [int(c) for c in args.levels.split(",")]
    args.workers = sorted({int(w) for w in args.workers.split(",")})
    return args


class Run:
    """The processes of one run: the mock, the proxies, the modelbus stack of the moment."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="modelbus-peers-"))
        self.mock = mock.start(self.workdir / "mock")
        self.group = ProcessGroup(self.workdir / "litellm")
        self.peers = [HttpTarget("direct", self.mock.simulator_url, "bench", mock.MODEL)]
        self.proxies = []
        self.kept = None  # the modelbus stack kept across levels with --one-stack

    def start_proxies(self) -> None:
        """Every configuration at once (importing the proxy takes minutes on a busy machine)."""
        for workers in () if self.args.no_litellm else self.args.workers:
            name = f"litellm-{workers}w"
            print(f"starting {name} (LiteLLM proxy, {workers} worker process(es))", flush=True)
            self.proxies.append(litellm_proxy.start(self.group, name,
                                                    self.mock.simulator_url + "/v1",
                                                    mock.MODEL, workers))
        for proxy in self.proxies:
            proxy.wait_live()
            print(f"{proxy.name} is up", flush=True)
            self.peers.append(HttpTarget(proxy.name, proxy.url, proxy.key, mock.MODEL,
                                         proxy.pids))

    @asynccontextmanager
    async def modelbus(self):
        """Gateway and Kafka-path targets on a fresh (or the kept) stack, warmed up."""
        fresh = self.kept is None
        mb = self.kept or modelbus_stack.start(self.mock.simulator_url)
        self.kept = mb if self.args.one_stack else None
        targets = [HttpTarget("modelbus-gateway", mb.gateway_url, mb.key, "summarize",
                              lambda: mb.pids),
                   KafkaTarget("modelbus-kafka", mb.bootstrap, pids=lambda: mb.pids)]
        try:
            for t in targets:
                await t.start()
            if fresh:
                await closed_loop(targets[0], 4, 2.0)
                await closed_loop(targets[1], 4, 2.0)
            yield targets, mb
        finally:
            for t in targets:
                await t.stop()
            if not self.args.one_stack:
                mb.stop()

    async def closed(self, callers: int, seconds: float, base: str = "direct") -> dict:
        out = {}

        async def measure(target) -> None:
            out[target.name] = await levels.closed_loop_level(target, callers, seconds)
            f = out[target.name]
            print(f"  {callers:>3} callers {target.name:<18} {f['rps']:>7} req/s  "
                  f"p50 {f['p50_ms']} ms  p99 {f['p99_ms']} ms  "
                  f"CPU {f['cpu_ms_per_request']} ms/req  errors {f['errors']}", flush=True)

        for t in self.peers:
            await measure(t)
        async with self.modelbus() as (targets, _):
            for t in targets:
                await measure(t)
        for f in out.values():
            levels.added_over(f, out[base])
        return out

    async def measure(self) -> dict:
        args = self.args
        for t in self.peers:
            await t.start()
        result = {"meta": meta(args)}
        print(f"one request at a time, {args.rounds} per target, interleaved", flush=True)
        async with self.modelbus() as (targets, _):
            result["sequential"] = await levels.sequential([*self.peers, *targets], args.rounds)
        result["closed_loop"] = []
        for callers in args.levels:
            print(f"closed loop, {callers} callers, {args.seconds:.0f} s per target", flush=True)
            result["closed_loop"].append(
                {"callers": callers, "targets": await self.closed(callers, args.seconds)})
        print(f"slow provider ({mock.SLOW_MS} ms), {args.slow_callers} callers", flush=True)
        mock.set_latency(self.mock.simulator_url, mock.SLOW_MS)
        try:
            slow = await self.closed(args.slow_callers, args.slow_seconds)
        finally:
            mock.set_latency(self.mock.simulator_url, 0)
        result["slow_provider"] = {"callers": args.slow_callers, "latency_ms": mock.SLOW_MS,
                                   "targets": slow}
        print(f"idle, {args.idle_seconds:.0f} s with no traffic", flush=True)
        async with self.modelbus() as (_, mb):
            await asyncio.sleep(2)
            stacks = {p.name: p.pids() for p in self.proxies}
            result["idle"] = await levels.idle({**stacks, "modelbus": mb.pids},
                                               args.idle_seconds)
        for t in self.peers:
            await t.stop()
        result["meta"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        return result

    def stop(self) -> None:
        if self.kept:
            self.kept.stop()
        self.group.stop_all()
        self.mock.stop()


def meta(args: argparse.Namespace) -> dict:
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cores": os.cpu_count(), "litellm": litellm_proxy.PIN,
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
            "quick": args.quick, "one_stack": args.one_stack,
            "seconds_per_target": args.seconds, "rounds": args.rounds}


def main(argv: list[str] | None = None) -> None:
    args = _args(argv)
    # a stopped run still stops its proxies and stacks (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = Run(args)
    try:
        run.start_proxies()
        result = asyncio.run(run.measure())
    finally:
        run.stop()
    data, png = report.write(result, args.out)
    print("\n== modelbus side by side with LiteLLM ==")
    print(report.table(result))
    print(f"results: {data}, plot: {png}")


if __name__ == "__main__":
    main()
