"""Benchmark: the gateway's added latency over a direct provider call, and its sustained rate.

Starts (or reuses) a broker and Redis, the provider simulator answering at once, and the
path a gateway call takes: gateway → router → openai worker → aggregator (→ audit, unless
``--no-audit``). Then, with one HTTP client (httpx, keep-alive):

1. low load: ``--samples`` sequential calls straight to the simulator, then the same number
   through the gateway; prints p50/p99 of each and the gateway's *added* latency;
2. sustained: ``--concurrency`` callers in a closed loop for ``--duration`` seconds; prints
   requests/s, errors, and CPU-ms per request summed over every modelbus process.

    uv run python bench/gateway_bench.py [--samples 300] [--concurrency 64] [--duration 20]
                                         [--no-audit]

``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` point at existing ones; else a tansu broker and a
private valkey-server are started (so no other run's circuit or budget state interferes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from modelbus_cli.processes import ProcessGroup
from modelbus_cli.stack import Stack, start_broker, start_redis
from modelbus_gateway.auth import hash_key

BODY = {"model": "summarize",
        "messages": [{"role": "user", "content": "Summarise: Kafka is a distributed log."}]}
DIRECT_BODY = {**BODY, "model": "gpt-4o-mini"}


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)


async def _timed(client: httpx.AsyncClient, url: str, body: dict, headers: dict) -> float:
    started = time.perf_counter()
    resp = await client.post(url, json=body, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    if resp.status_code != 200:
        raise RuntimeError(f"{url}: {resp.status_code} {resp.text[:200]}")
    return elapsed


async def _low_load(args, sim: str, gw: str, key: str) -> dict:
    async with httpx.AsyncClient(timeout=30) as client:
        direct_h = {"authorization": "Bearer bench"}
        gw_h = {"authorization": f"Bearer {key}"}
        for _ in range(30):  # warm up both paths (connections, metadata, JIT-ish caches)
            await _timed(client, sim + "/v1/chat/completions", DIRECT_BODY, direct_h)
            await _timed(client, gw + "/v1/chat/completions", BODY, gw_h)
        direct = [await _timed(client, sim + "/v1/chat/completions", DIRECT_BODY, direct_h)
                  for _ in range(args.samples)]
        via = [await _timed(client, gw + "/v1/chat/completions", BODY, gw_h)
               for _ in range(args.samples)]
    return {
        "direct_ms_p50": _pct(direct, 0.5), "direct_ms_p99": _pct(direct, 0.99),
        "gateway_ms_p50": _pct(via, 0.5), "gateway_ms_p99": _pct(via, 0.99),
        "added_ms_p50": round(_pct(via, 0.5) - _pct(direct, 0.5), 2),
        "added_ms_p99": round(_pct(via, 0.99) - _pct(direct, 0.99), 2),
    }


async def _sustained(args, gw: str, key: str, pids: dict[str, int]) -> dict:
    done, errors, latencies = 0, 0, []
    limits = httpx.Limits(max_connections=args.concurrency,
                          max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        headers = {"authorization": f"Bearer {key}"}
        end = time.monotonic() + args.duration

        async def caller() -> None:
            nonlocal done, errors
            while time.monotonic() < end:
                started = time.perf_counter()
                resp = await client.post(gw + "/v1/chat/completions", json=BODY,
                                         headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                done += resp.status_code == 200
                errors += resp.status_code != 200

        cpu0, t0 = {n: _cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
        await asyncio.gather(*(caller() for _ in range(args.concurrency)))
        cpu1, t1 = {n: _cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
    per = {n: round((cpu1[n] - cpu0[n]) * 1000 / max(done, 1), 2) for n in pids}
    return {
        "concurrency": args.concurrency, "requests_ok": done, "errors": errors,
        "sustained_rps": round(done / (t1 - t0), 1),
        "latency_ms_p50": _pct(latencies, 0.5), "latency_ms_p99": _pct(latencies, 0.99),
        "cpu_ms_per_request_all_processes": round(sum(per.values()), 2),
        "cpu_ms_per_request_by_process": per,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=300, help="sequential calls per path")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--audit", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="modelbus-gw-bench-"))
    group = ProcessGroup(workdir)
    stack = Stack(workdir / "stack", providers=("openai",))
    key = f"sk-bench-{uuid.uuid4().hex}"
    try:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or start_broker(group)
        stack.bootstrap = bootstrap
        # a private Redis unless one is given: circuit and budget state of other runs on a
        # shared Redis must not leak into the measurement
        stack.redis_url = os.environ.get("REDIS_URL") or start_redis(group)
        stack.database_url = f"sqlite+aiosqlite:///{workdir / 'audit.db'}"
        stack.start_simulator()
        for name in ("router", "aggregator", *(("audit",) if args.audit else ())):
            stack.start_service(name, f"modelbus_{name}.app")
        stack.start_service("worker-openai", "modelbus_adapter_worker.app",
                            stack.worker_env("openai"))
        keys = [{"key_sha256": hash_key(key), "tenant": "bench", "team": "bench",
                 "requests_per_min": 0}]  # the benchmark measures, it is not rate limited
        stack.start_service("gateway", "modelbus_gateway.app",
                            {"MODELBUS_API_KEYS": json.dumps(keys)})
        stack.wait_ready()
        pids = {c.name: c.proc.pid for c in [*stack.group.children, *group.children]}
        gw = stack.health["gateway"]
        low = asyncio.run(_low_load(args, stack.simulator_url, gw, key))
        print(json.dumps({"low_load": low}, indent=2), flush=True)
        high = asyncio.run(_sustained(args, gw, key, pids))
        print(json.dumps({"sustained": high}, indent=2))
    finally:
        stack.stop()
        group.stop_all()


if __name__ == "__main__":
    main()
