"""Policy replay throughput and memory, and what a shadow policy adds to the router.

    uv run python bench/replay_bench.py [--sizes 10000,100000] [--shadow-runs 5000]

1. For each size N: a SQLite audit store (migrated by the audit's own code) is filled with N
   recorded requests — request, task (with its routing decision), result and response
   rows, as the audit writes them — and ``modelbus replay``'s code path
   (:class:`modelbus_router.replay.audit_source.AuditSource` → :func:`modelbus_router.replay.replay`)
   runs over it under a candidate policy, in a child process of its own so its peak resident
   memory (``ru_maxrss``) is its own. The store lives in ``/dev/shm`` where there is one,
   so the figure is replay's and not the disk's. Prints requests per second of wall clock
   and per CPU-second of the replaying process (the figure that holds on a busy machine)
   and peak memory; memory that does not grow with N is the point.
2. The shadow decision a router with ``MODELBUS_SHADOW_POLICY_PATH`` makes per request
   (:meth:`modelbus_router.shadow.ShadowRouter.decide` plus encoding the event): median and
   p99 µs. It runs after the request's answer is published, so it adds this much CPU per
   request to the router and nothing to the latency of the request itself; the next
   request on the same partition waits for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

POLICY = """
catalog:
  big: {provider: openai, model: gpt-4o, input_usd_per_mtok: 2.5, output_usd_per_mtok: 10.0}
  small: {provider: openai, model: gpt-4o-mini, input_usd_per_mtok: 0.15, output_usd_per_mtok: 0.6}
  regional: {provider: openai, model: gpt-4.1, input_usd_per_mtok: 2.0, output_usd_per_mtok: 8.0,
             regions: [eu, us]}
  local: {provider: selfhosted, model: llama-local}
routes:
  summarize: {targets: [{model: big}]}
  chat: {targets: [{model: regional}, {model: local}], strategy: fallback}
  extract: {targets: [{model: small}]}
"""
CANDIDATE = (POLICY.replace("summarize: {targets: [{model: big}]}",
                            "summarize: {targets: [{model: small}]}")
             .replace("regions: [eu, us]", "regions: [us]"))
PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4.1": (2.0, 8.0), "gpt-4o-mini": (0.15, 0.6)}
TASKS = [("summarize", "big", "openai", "gpt-4o"), ("chat", "regional", "openai", "gpt-4.1"),
         ("extract", "small", "openai", "gpt-4o-mini")]


def rows_for(i: int, start: datetime) -> list[dict]:
    task, _, provider, model = TASKS[i % 3]
    region = ["eu", "us", None][i // 3 % 3]
    rid, tenant, team = f"r{i}", "bench", f"team-{i % 7}"
    at = start + timedelta(milliseconds=i)
    request = {"request_id": rid, "task": task, "region": region,
               "messages": [{"role": "user", "content": f"question {i} " + "word " * (i % 40)}],
               "caller": {"tenant": tenant, "team": team, "user": "u"}}
    decision = {"policy_version": "sha256:bench", "route": task, "strategy": "single",
                "rejected": [],
                "estimated_input_tokens": 12 + i % 40, "decided_at": at.isoformat()}
    base = {"request_id": rid, "tenant": tenant, "team": team, "task": task,
            "topic": "modelbus.x.v1", "kafka_partition": 0, "body_size": 100, "headers": [],
            "stored_at": at, "event_time": at, "content_hash": "0" * 64, "prev_hash": "0" * 64,
            "row_hash": "0" * 64, "data_class": "internal"}
    tokens_in, tokens_out = 12 + i % 40, 9
    selected = [{"provider": provider, "model": model}]
    if task == "chat":  # a fallback plan: the self-hosted model was reachable then too
        selected.append({"provider": "selfhosted", "model": "llama-local"})
    decision["selected"] = selected
    return [
        {**base, "kind": "request", "event_id": f"q{i}", "payload": request},
        {**base, "kind": "task", "event_id": f"t{i}", "provider": provider, "model": model,
         "payload": {"decision": decision}, "policy_version": "sha256:bench", "part_id": 0},
        {**base, "kind": "result", "event_id": f"s{i}", "tenant": None, "provider": provider,
         "model": model, "input_tokens": tokens_in, "output_tokens": tokens_out,
         "cost_usd": (tokens_in * PRICES[model][0] + tokens_out * PRICES[model][1]) / 1e6,
         "payload": {}},
        {**base, "kind": "response", "event_id": f"p{i}", "status": "ok", "payload": {}},
    ]


def fill(url: str, n: int) -> None:
    """Migrate with the audit's own code, then bulk-insert through a synchronous engine
    (a bench setup step: the async driver's per-row overhead would dominate)."""
    from modelbus_audit.store import AuditStore
    from modelbus_audit.tables import audit_events
    from sqlalchemy import create_engine

    async def migrate() -> None:
        await (await AuditStore.open(url)).close()

    asyncio.run(migrate())
    columns = [c.name for c in audit_events.columns if c.name != "id"]
    start = datetime(2026, 12, 1, tzinfo=UTC)
    seq = 0
    engine = create_engine(url.replace("+aiosqlite", ""))
    with engine.begin() as conn:
        for chunk in range(0, n, 5000):
            rows = []
            for i in range(chunk, min(n, chunk + 5000)):
                for row in rows_for(i, start):
                    seq += 1
                    row = {**row, "chain": "bench", "chain_seq": seq, "kafka_offset": seq}
                    rows.append({c: row.get(c) for c in columns})  # one key set: executemany
            conn.execute(audit_events.insert(), rows)
    engine.dispose()


async def replay_child(url: str, policy_path: str) -> dict:
    from modelbus_router.policy import load_policy
    from modelbus_router.replay import replay
    from modelbus_router.replay.audit_source import AuditSource

    source = AuditSource(url)
    started, cpu = time.perf_counter(), time.process_time()
    report = await replay(source.batches(), load_policy(policy_path))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await source.close()
    return {"replayed": report.replayed, "seconds": elapsed, "cpu_seconds": cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "model_changed": report.model_changed, "served_to_refused": report.served_to_refused}


def run_size(n: int, workdir: Path) -> dict:
    url = f"sqlite+aiosqlite:///{workdir / f'audit-{n}.db'}"
    started = time.perf_counter()
    fill(url, n)
    filled = time.perf_counter() - started
    policy = workdir / "candidate.yaml"
    policy.write_text(CANDIDATE)
    out = subprocess.run([sys.executable, __file__, "--child", url, str(policy)],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {**result, "fill_seconds": filled}


def shadow_cost(runs: int) -> tuple[float, float]:
    from modelbus_router.engine import Outcome
    from modelbus_router.planner import plan
    from modelbus_router.policy import parse_policy
    from modelbus_router.shadow import ShadowRouter
    from modelbus_schemas import RequestEvent, encode

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(CANDIDATE)
    shadow, active = ShadowRouter(f.name), parse_policy(POLICY)
    os.unlink(f.name)
    times = []
    for i in range(runs):
        task = TASKS[i % 3][0]
        request = RequestEvent(request_id=f"s{i}", task=task, region=["eu", "us", None][i % 3],
                               messages=[{"role": "user", "content": f"question {i} word word"}],
                               caller={"tenant": "bench", "team": "t"})
        outcome = Outcome(decision=plan(request, active))
        outcome.tasks = outcome.decision.tasks
        t0 = time.perf_counter()
        event = shadow.decide(active, request, outcome)
        encode(event)
        times.append((time.perf_counter() - t0) * 1e6)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--shadow-runs", type=int, default=5000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(replay_child(*args.child))))
        return
    p50, p99 = shadow_cost(args.shadow_runs)
    print(f"shadow decision per request (decide + encode the event): p50 {p50:.0f} µs, "
          f"p99 {p99:.0f} µs of router CPU, after the answer is published", flush=True)
    shm = Path("/dev/shm")  # the store in memory: the figure is replay's, not the disk's
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            r = run_size(n, Path(tmp))
            print(f"replay {r['replayed']:>7} recorded requests: {r['seconds']:6.1f} s, "
                  f"{r['replayed'] / r['seconds']:6.0f} req/s "
                  f"({r['replayed'] / r['cpu_seconds']:6.0f} per CPU-second), "
                  f"peak RSS {r['peak_rss_mb']:6.1f} MB  (model changed {r['model_changed']}; "
                  f"store filled in {r['fill_seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
