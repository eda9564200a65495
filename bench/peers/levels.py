"""What is measured, level by level; every figure comes back as a plain dict.

* :func:`sequential`: one request at a time, targets interleaved, so every target sees the
  same machine at the same moment; latency added over the direct call to the mock.
* :func:`closed_loop_level`: ``callers`` busy callers per target, one target after the
  other; req/s, p50/p99, CPU-ms per request of each of the target's processes, and the
  load generator's own CPU (in cores: near 1.0 it would be the bottleneck, and say so).
* :func:`idle`: CPU of each stack's processes over a quiet window, in cores.
"""

from __future__ import annotations

import asyncio
import time
from typing import Self

import psutil

from bench.cpu import CpuMeter
from bench.peers.load import Outcome, closed_loop, interleaved


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)


def _latency(out: Outcome) -> dict:
    return {"requests_ok": len(out.latencies_ms), "errors": out.errors,
            "first_error": out.first_error or None,
            "p50_ms": pct(out.latencies_ms, 0.5), "p99_ms": pct(out.latencies_ms, 0.99)}


def added_over(figures: dict, base: dict) -> None:
    for q in ("p50", "p99"):
        mine, direct = figures[f"{q}_ms"], base[f"{q}_ms"]
        figures[f"added_{q}_ms"] = (round(mine - direct, 2)
                                    if mine is not None and direct is not None else None)


async def sequential(targets: list, rounds: int, warmup: int = 20) -> dict:
    """Interleaved one-at-a-time latency; ``targets[0]`` is the direct baseline."""
    await interleaved(targets, warmup)
    outs = await interleaved(targets, rounds)
    result = {name: _latency(out) for name, out in outs.items()}
    base = result[targets[0].name]
    for figures in result.values():
        added_over(figures, base)
    return result


class LoadgenCpu:
    """The load generator's own CPU over a window, in cores."""

    def __enter__(self) -> Self:
        self._proc = psutil.Process()
        self._t0, self._c0 = time.perf_counter(), sum(self._proc.cpu_times()[:2])
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._t0
        self.cores = round((sum(self._proc.cpu_times()[:2]) - self._c0) / wall, 2)


async def closed_loop_level(target, callers: int, seconds: float) -> dict:
    pids = target.pids()
    meter = CpuMeter(pids)
    before = meter.snapshot()
    with LoadgenCpu() as gen:
        out = await closed_loop(target, callers, seconds)
    cpu = CpuMeter.delta(before, meter.snapshot())
    done = max(len(out.latencies_ms), 1)
    by_process = {name: round(s * 1000 / done, 2) for name, s in cpu.items()}
    return {"callers": callers, **_latency(out),
            "rps": round(len(out.latencies_ms) / out.seconds, 1),
            "cpu_ms_per_request": round(sum(by_process.values()), 2) if pids else None,
            "cpu_ms_per_request_by_process": by_process,
            "loadgen_cores": gen.cores}


async def idle(stacks: dict[str, dict[str, int]], seconds: float) -> dict:
    """Cores kept busy by each stack (name → its processes) with no traffic at all."""
    meters = {name: CpuMeter(pids) for name, pids in stacks.items()}
    before = {name: m.snapshot() for name, m in meters.items()}
    await asyncio.sleep(seconds)
    result = {}
    for name, meter in meters.items():
        cpu = CpuMeter.delta(before[name], meter.snapshot())
        result[name] = {"cores": round(sum(cpu.values()) / seconds, 3),
                        "by_process": {p: round(s / seconds, 3) for p, s in cpu.items()}}
    return result
