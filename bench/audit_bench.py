"""Audit ingest throughput: rows/s from Kafka-shaped messages into the audit store, on
PostgreSQL and SQLite, through the code path the audit consumer runs per batch (parse the
message → privacy redaction → hash-chain seal → one transaction per batch). No broker: this
measures the store side of the consumer.

    uv run python bench/audit_bench.py [--rows 20000] [--batch 500] [--mode redact]

PostgreSQL is ``DATABASE_URL``'s server (else 127.0.0.1:5432 as ``postgres``) in a fresh
database dropped afterwards; SQLite is a file in a temporary folder. Prints rows/s per store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime

from modelbus_audit.privacy import PrivacyPolicy, protect
from modelbus_audit.record import AuditRecord
from modelbus_audit.store import AuditStore
from modelbus_schemas import cloudevents as ce
from modelbus_schemas.topics import REQUESTS, RESULTS
from modelbus_testing.pg import temporary_postgres_database

PARTITIONS = 6


def messages(count: int) -> list[tuple]:
    """Alternating request and result messages over 6 partitions, each with a unique id."""
    now = datetime.now(UTC)
    out = []
    for i in range(count):
        rid = f"bench-{uuid.uuid4().hex[:12]}"
        if i % 2 == 0:
            body = {"request_id": rid, "task": "summarize",
                    "messages": [{"role": "user", "content": f"Summarise item {i}; mail "
                                  f"ana{i}@example.com or call +44 20 7946 0958."}],
                    "caller": {"tenant": "acme", "team": "support", "user": f"u{i % 50}"},
                    "data_class": "internal"}
            topic, ce_type = REQUESTS, ce.TYPE_REQUEST
        else:
            body = {"event_id": f"{rid}:res", "request_id": rid, "task": "summarize",
                    "part_id": 0, "parts_total": 1, "provider": "openai",
                    "model": "gpt-4o-mini", "status": "ok", "text": "A short answer.",
                    "usage": {"input_tokens": 40, "output_tokens": 12}, "cost_usd": 0.00002,
                    "latency_ms": 120.0, "received_at": now.isoformat(),
                    "policy_version": "v1"}
            topic, ce_type = RESULTS, ce.TYPE_RESULT
        headers = ce.ce_headers(event_id=f"{rid}:{i}", ce_type=ce_type, source="bench", time=now)
        out.append((topic, i % PARTITIONS, i // PARTITIONS, rid.encode(),
                    json.dumps(body).encode(), headers, int(now.timestamp() * 1000)))
    return out


async def ingest(url: str, batch: list[tuple], size: int, policy: PrivacyPolicy) -> float:
    store = await AuditStore.open(url)
    try:
        started = time.perf_counter()
        for start in range(0, len(batch), size):
            records = [protect(AuditRecord.from_message(*m), policy)
                       for m in batch[start : start + size]]
            await store.write(records)
        elapsed = time.perf_counter() - started
        assert await store.count() == len(batch)
        report = await store.verify()
        assert report.ok, report.describe()
        return len(batch) / elapsed
    finally:
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--mode", default="redact", choices=("full", "redact", "hashes"))
    args = parser.parse_args()
    policy = PrivacyPolicy(args.mode)
    print(f"audit ingest: {args.rows} rows, batches of {args.batch}, text mode {args.mode}")
    with temporary_postgres_database("modelbus_audit_bench") as pg_url:
        rate = await ingest(pg_url, messages(args.rows), args.batch, policy)
        print(f"  postgresql: {rate:10.0f} rows/s")
    with tempfile.TemporaryDirectory() as folder:
        rate = await ingest(f"sqlite+aiosqlite:///{folder}/audit.db", messages(args.rows),
                            args.batch, policy)
        print(f"  sqlite:     {rate:10.0f} rows/s")


if __name__ == "__main__":
    asyncio.run(main())
