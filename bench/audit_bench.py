"""The audit store at compliance scale, on PostgreSQL and SQLite: fills a store through the
audit consumer's own per-batch code (parse the message → privacy redaction → hash-chain seal
→ one transaction per batch, rollup and callers included) with requests spread over 30 days
(5 tenants, 20 teams, 6 models; request → task → result → response, 1 result in 20 failed),
then prints ingestion rate, lineage lookup, time-window search, filtered search, usage report,
export time and peak memory, and verify time (incremental from the last signed checkpoint,
made one hour before the end, and full). Then the archive: on PostgreSQL the time to DELETE one
day's rows against a DROP of a table holding the same rows and indexes; archiving the older
half of the days to an in-process S3 server (moto) and dropping them (rows/s, MB written);
verify of the live store across the dropped days, ``verify --archive``, and a team query
over archive and live store (DuckDB).

    uv run python bench/audit_bench.py [--events 1000000] [--batch 500] [--only sqlite]
                                       [--ingest-only]

No broker: this measures the store side of the consumer. PostgreSQL is ``DATABASE_URL``'s
server (else 127.0.0.1:5432 as ``postgres``) in a fresh database dropped afterwards; SQLite is
a file in a temporary folder. ``--rows`` is the old name of ``--events``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import tempfile
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import psutil
from modelbus_audit import archive, archive_format, export, partitions
from modelbus_audit.archive_target import ArchiveTarget
from modelbus_audit.archive_verify import verify_archive
from modelbus_audit.privacy import PrivacyPolicy, protect
from modelbus_audit.queries import Filters, cursor_of
from modelbus_audit.query import run_query
from modelbus_audit.record import AuditRecord
from modelbus_audit.store import AuditStore
from modelbus_audit.verify_parallel import PARALLEL_MIN_ROWS
from modelbus_audit.views import Role
from modelbus_runtime.signing import KeyRing
from modelbus_schemas import (
    Caller,
    ChatMessage,
    ModelRef,
    RequestEvent,
    ResponseEvent,
    ResultEvent,
    RoutingDecision,
    TaskEvent,
    Usage,
)
from modelbus_schemas import cloudevents as ce
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import REQUESTS, RESPONSES, RESULTS, tasks_topic
from modelbus_testing.pg import temporary_postgres_database
from sqlalchemy import text

PARTITIONS = 6
DAYS = 30
TENANTS = [f"tenant-{i}" for i in range(5)]
TEAMS = [f"team-{i:02d}" for i in range(20)]
MODELS = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-haiku"),
          ("anthropic", "claude-sonnet"), ("gemini", "gemini-flash"), ("gemini", "gemini-pro")]
RING = KeyRing.parse("bench:" + "b" * 32)
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
START = END - timedelta(days=DAYS)
Message = tuple


def _templates() -> dict[str, dict]:
    """One valid event of each kind as JSON-ready dicts; requests are made by editing them."""
    caller = Caller(tenant="t", team="x", user="u")
    messages = [ChatMessage(role="user", content="Summarise: mail ana@example.com please.")]
    ref = ModelRef(provider="openai", model="gpt-4o-mini")
    decision = RoutingDecision(policy_version="v7", route="r", strategy="single", selected=[ref],
                               rejected=[], decided_at=START)
    scope = scoped_id("t", "r")
    common = {"request_id": "r", "task": "summarize"}
    return {
        "request": RequestEvent(**common, messages=messages, caller=caller,
                                data_class="internal").model_dump(mode="json"),
        "task": TaskEvent(**common, event_id=TaskEvent.make_id(scope, 0), part_id=0,
                          parts_total=1, provider="openai", model="gpt-4o-mini",
                          messages=messages, caller=caller, data_class="internal",
                          received_at=START, decision=decision).model_dump(mode="json"),
        "result": ResultEvent(**common, event_id=ResultEvent.make_id(scope, 0), tenant="t",
                              part_id=0, parts_total=1, provider="openai", model="gpt-4o-mini",
                              status="ok", text="A short answer.",
                              usage=Usage(input_tokens=40, output_tokens=12), cost_usd=0.00002,
                              latency_ms=120.0, received_at=START,
                              policy_version="v7").model_dump(mode="json"),
        "response": ResponseEvent(**common, event_id=ResponseEvent.make_id(scope), tenant="t",
                                  status="ok", output="A short answer.",
                                  models=["openai/gpt-4o-mini"], cost_usd=0.00002,
                                  policy_version="v7",
                                  created_at=START).model_dump(mode="json"),
    }


def messages(events: int, seed: int = 7) -> Iterator[tuple[datetime, list[Message]]]:
    """(request time, its 4 messages) for ``events // 4`` requests, oldest first."""
    rng, t = random.Random(seed), _templates()
    offsets: defaultdict[tuple[str, int], int] = defaultdict(int)
    requests = max(1, events // 4)
    step = (END - START) / requests
    for i in range(requests):
        at = START + step * i
        tenant, team = rng.choice(TENANTS), rng.choice(TEAMS)
        provider, model = rng.choice(MODELS)
        rid, failed = f"bench-{i:08d}", rng.random() < 0.05
        scope = scoped_id(tenant, rid)
        caller = {"tenant": tenant, "team": team, "user": f"user-{rng.randrange(200)}"}
        ids = {"request_id": rid}
        request = {**t["request"], **ids, "caller": caller}
        task = {**t["task"], **ids, "caller": caller, "provider": provider, "model": model,
                "event_id": TaskEvent.make_id(scope, 0)}
        result = {**t["result"], **ids, "tenant": tenant, "provider": provider, "model": model,
                  "event_id": ResultEvent.make_id(scope, 0), "cost_usd": rng.random() / 1000}
        if failed:
            result.update(status="error", text=None, usage=None, cost_usd=0.0,
                          error={"code": "provider_terminal", "message": "bad request"})
        response = {**t["response"], **ids, "tenant": tenant,
                    "event_id": ResponseEvent.make_id(scope), "status": "error" if failed
                    else "ok", "models": [f"{provider}/{model}"]}
        out = []
        for n, (topic, kind, body, ce_type) in enumerate((
                (REQUESTS, "request", request, ce.TYPE_REQUEST),
                (tasks_topic(provider), "task", task, ce.TYPE_TASK),
                (RESULTS, "result", result, ce.TYPE_RESULT),
                (RESPONSES, "response", response, ce.TYPE_RESPONSE))):
            when = at + timedelta(milliseconds=100 * n)
            partition = zlib.crc32(rid.encode()) % PARTITIONS
            offset = offsets[(topic, partition)]
            offsets[(topic, partition)] += 1
            headers = ce.ce_headers(event_id=body.get("event_id") or f"request:{scope}",
                                    ce_type=ce_type, source="bench", time=when)
            out.append((topic, partition, offset, rid.encode(), json.dumps(body).encode(),
                        headers, int(when.timestamp() * 1000)))
        yield at, out


async def fill(store: AuditStore, events: int, batch: int, policy: PrivacyPolicy) -> dict:
    """Ingest through the consumer's per-batch path; checkpoint every tenth of the fill and
    once an hour before the end. Returns the rate and a sample of (tenant, request id)."""
    pending: list[Message] = []
    written, sample = 0, []
    started, cpu = time.perf_counter(), time.process_time()
    checkpoint_at, last_hour_checkpointed = max(batch, events // 10), False

    async def flush() -> None:
        nonlocal written
        records = [protect(AuditRecord.from_message(*m), policy) for m in pending]
        written += await store.write(records)
        pending.clear()

    for at, group in messages(events):
        if not last_hour_checkpointed and at >= END - timedelta(hours=1):
            await flush()
            await store.checkpoint()
            last_hour_checkpointed = True
        pending.extend(group)
        if len(sample) < 2000 and random.random() < 0.01:
            sample.append((json.loads(group[0][4])["caller"]["tenant"], group[0][3].decode()))
        if len(pending) >= batch:
            await flush()
            if written // checkpoint_at != (written - batch) // checkpoint_at:
                await store.checkpoint()
    await flush()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"events": written, "rate": written / seconds, "seconds": seconds, "sample": sample,
            "per_cpu_s": written / cpu}


async def latency(call: Callable[[], Awaitable], runs: int) -> str:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await call()
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    return f"median {statistics.median(times):8.1f} ms  p95 {p95:8.1f} ms"


class PeakRss:
    """Peak resident memory above the start while the block runs (sampled every 10 ms)."""

    def __enter__(self):
        self.process, self.stop = psutil.Process(), threading.Event()
        self.base = self.peak = self.process.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def mb(self) -> float:
        return (self.peak - self.base) / 2**20


async def export_run(store: AuditStore, filters: Filters, limit: int | None) -> str:
    with PeakRss() as memory, open(os.devnull, "wb") as sink:  # noqa: ASYNC230
        began = time.perf_counter()
        rows = await export.write_export(export.iter_rows(store, filters, Role.COMPLIANCE,
                                                          limit), "parquet", sink)
        seconds = time.perf_counter() - began
    return f"{rows:9d} rows {seconds:7.1f} s  peak +{memory.mb:6.1f} MB RSS"


async def measure(url: str, name: str, events: int, batch: int, policy: PrivacyPolicy,
                  day_rows: int = 100_000, ingest_only: bool = False) -> None:
    store = await AuditStore.open(url, ring=RING)
    try:
        filled = await fill(store, events, batch, policy)
        print(f"\n{name}: {filled['events']} events in {filled['seconds']:.0f} s")
        print(f"  ingestion            {filled['rate']:10.0f} events/s wall, "
              f"{filled['per_cpu_s']:.0f} per CPU-second of this process "
              f"(load average {os.getloadavg()[0]:.1f})")
        if ingest_only:
            return
        rng = random.Random(3)
        sample = filled["sample"]
        print("  lineage lookup       " + await latency(
            lambda: store.lineage(rng.choice(sample)[1], rng.choice(sample)[0]), 50))
        print("  1-hour window search " + await latency(lambda: store.search(Filters(
            since=(w := START + timedelta(hours=rng.randrange(DAYS * 24))),
            until=w + timedelta(hours=1)), 100), 30))
        print("  team+status search   " + await latency(lambda: store.search(Filters(
            team=rng.choice(TEAMS), status="error"), 100), 30))
        deep = await store.search(Filters(tenant=TENANTS[1]), 1000)
        print("  tenant page 2 (keyset)" + await latency(
            lambda: store.search(Filters(tenant=TENANTS[1]), 100, cursor_of(deep[-1])),
            30))
        print("  usage report, 1 day  " + await latency(lambda: store.usage_report(Filters(
            since=END - timedelta(days=1))), 20))
        print("  usage report, 30 days" + await latency(lambda: store.usage_report(Filters(
            since=START)), 20))
        tenth = Filters(since=END - timedelta(days=DAYS / 10))
        print("  export parquet 1/10  " + await export_run(store, tenth, None))
        print("  export parquet all   " + await export_run(store, Filters(), None))
        began = time.perf_counter()
        report = await store.verify()
        print(f"  verify incremental   {time.perf_counter() - began:7.2f} s  "
              f"({report.rows_checked} rows since the checkpoints, ok={report.ok})")
        began = time.perf_counter()
        workers = os.cpu_count() or 1
        report = await store.verify(full=True, workers=workers)
        processes = workers if report.rows_checked >= PARALLEL_MIN_ROWS else 1
        print(f"  verify full          {time.perf_counter() - began:7.2f} s  "
              f"({report.rows_checked} rows, {processes} process(es), ok={report.ok})")
        await archive_run(store, day_rows)
    finally:
        await store.close()


async def drop_against_delete(store: AuditStore, day_rows: int) -> None:
    """PostgreSQL: a day of ``day_rows`` rows (the oldest day's rows repeated, with every index
    of its partition) removed by DELETE, and by DROP TABLE."""
    async with store.engine.connect() as connection:
        day = (await connection.run_sync(partitions.days))[0]
        source = partitions.name_of(day)
        held = (await connection.execute(text(f"SELECT count(*) FROM {source}"))).scalar_one()
        indexes = (await connection.execute(text(
            f"SELECT indexdef FROM pg_indexes WHERE tablename = '{source}'"))).scalars().all()
    columns, copies = _copies(), max(1, -(-day_rows // max(held, 1)))
    timings: dict[str, list[float]] = defaultdict(list)
    for _ in range(3):  # a loaded machine: three rounds, each printed
        for how, statement in (("DELETE", "DELETE FROM {t}"), ("DROP", "DROP TABLE {t}")):
            scratch = f"bench_{how.lower()}"
            async with store.engine.begin() as connection:
                await connection.execute(text(
                    f"CREATE TABLE {scratch} (LIKE {source} INCLUDING DEFAULTS)"))
                rows = await _insert_copies(connection, scratch, columns, source, copies, held)
                for definition in indexes:
                    await connection.execute(text(re.sub(
                        r"INDEX \S+ ON (ONLY )?\S+ ", f"INDEX ON {scratch} ", definition)))
            began = time.perf_counter()
            async with store.engine.begin() as connection:
                await connection.execute(text(statement.format(t=scratch)))
            timings[how].append((time.perf_counter() - began) * 1000)
            async with store.engine.begin() as connection:
                await connection.execute(text(f"DROP TABLE IF EXISTS {scratch}"))
    shown = {how: " / ".join(f"{ms:.0f}" for ms in values) for how, values in timings.items()}
    print(f"  remove one day       {rows} rows, {len(indexes)} indexes: DELETE "
          f"{shown['DELETE']} ms, DROP TABLE {shown['DROP']} ms")


async def _insert_copies(connection, table: str, columns: str, source: str, copies: int,
                         held: int) -> int:
    """Insert ``copies`` repetitions of ``source``'s rows, about 10,000 rows a statement (the
    engine's 60 s statement timeout, on a loaded machine); return the rows inserted."""
    step, rows = max(1, 10_000 // max(held, 1)), 0
    for first in range(1, copies + 1, step):
        last = min(first + step - 1, copies)
        rows += (await connection.execute(text(
            f"INSERT INTO {table} SELECT {columns} FROM {source}, "
            f"generate_series({first}, {last}) AS g"))).rowcount
    return rows


def _copies(shift: str = "") -> str:
    """The select list that repeats a day's rows (``g`` of generate_series) as unique rows of
    chains of their own (``<chain>#g``), their event time moved by ``shift``."""
    unique = {"id": "id * 100000 + g", "event_id": "event_id || ':' || g",
              "chain": "chain || '#' || g", "event_time": f"event_time {shift}"}
    return ", ".join(unique.get(c, c) for c in archive_format.SCHEMA.names)


async def archive_big_day(store: AuditStore, target: ArchiveTarget, day_rows: int) -> None:
    """PostgreSQL: a day of ``day_rows`` rows before the fill, archived and dropped alone."""
    async with store.engine.begin() as connection:
        source_day = (await connection.run_sync(partitions.days))[0]
        day = source_day - timedelta(days=1)
        await connection.run_sync(lambda sync: partitions.create(sync, day))
        source = partitions.name_of(source_day)
        held = (await connection.execute(text(f"SELECT count(*) FROM {source}"))).scalar_one()
        copies = max(1, -(-day_rows // max(held, 1)))
        columns = _copies("- interval '1 day'")
        await _insert_copies(connection, "audit_events", columns, source, copies, held)
    began = time.perf_counter()
    done = await archive.archive_day(store.engine, target, day, RING)
    seconds = time.perf_counter() - began
    print(f"  archive a big day    {done.rows} rows, {done.files} files, "
          f"{done.bytes / 2**20:.1f} MB Parquet in {seconds:.1f} s: "
          f"{done.rows / seconds:.0f} rows/s, {done.bytes / 2**20 / seconds:.2f} MB/s")


async def archive_run(store: AuditStore, day_rows: int) -> None:
    from modelbus_testing.s3 import moto_s3

    with moto_s3() as endpoint:
        await _archive_run(store, day_rows, endpoint)


async def _archive_run(store: AuditStore, day_rows: int, endpoint: str) -> None:
    target = ArchiveTarget("bench-archive", "audit", endpoint, "us-east-1", "bench", "bench")
    target.client.create_bucket(Bucket=target.bucket)
    if store.engine.dialect.name == "postgresql":
        await partitions.maintain(store.engine)  # the audit service's hourly round
        await drop_against_delete(store, day_rows)
        await archive_big_day(store, target, day_rows)
    began = time.perf_counter()
    done = await archive.archive_closed(store.engine, target, DAYS // 2, RING)
    seconds = time.perf_counter() - began
    rows, size = sum(d.rows for d in done), sum(d.bytes for d in done)
    print(f"  archive + drop       {len(done)} days, {rows} rows, {size / 2**20:.1f} MB "
          f"Parquet in {seconds:.1f} s: {rows / seconds:.0f} rows/s, "
          f"{size / 2**20 / seconds:.2f} MB/s")
    began = time.perf_counter()
    report = await store.verify(full=True)
    print(f"  verify full, after   {time.perf_counter() - began:7.2f} s  "
          f"({report.rows_checked} live rows, ok={report.ok})")
    began = time.perf_counter()
    checked = await verify_archive(store.engine, target, RING)
    print(f"  verify --archive     {time.perf_counter() - began:7.2f} s  "
          f"({checked.files} files, ok={checked.ok})")
    began = time.perf_counter()
    _, answer = await run_query(store.engine, target, "SELECT count(*), sum(cost_usd) "
                                f"FROM events WHERE req_team = '{TEAMS[3]}'")
    print(f"  query, team, all     {time.perf_counter() - began:7.2f} s  "
          f"({answer[0][0]} rows of {TEAMS[3]}, archive + live)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", "--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--mode", default="redact", choices=("full", "redact", "hashes"))
    parser.add_argument("--only", choices=("postgresql", "sqlite"), default=None)
    parser.add_argument("--ingest-only", action="store_true", help="stop after the fill")
    parser.add_argument("--day-rows", type=int, default=100_000,
                        help="rows of the day removed by DELETE and by DROP (PostgreSQL)")
    args = parser.parse_args()
    policy = PrivacyPolicy(args.mode)
    print(f"audit store bench: {args.events} events, batches of {args.batch}, "
          f"text mode {args.mode}, {os.cpu_count()} CPUs")
    if args.only != "sqlite":
        with temporary_postgres_database("modelbus_audit_bench") as pg_url:
            await measure(pg_url, "postgresql", args.events, args.batch, policy,
                          args.day_rows, args.ingest_only)
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as folder:
            await measure(f"sqlite+aiosqlite:///{folder}/audit.db", "sqlite", args.events,
                          args.batch, policy, ingest_only=args.ingest_only)


if __name__ == "__main__":
    asyncio.run(main())
