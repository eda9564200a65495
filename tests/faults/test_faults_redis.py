"""A Redis restart in the middle of load: nothing lost, nothing answered twice."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import pytest
from modelbus_cli.stack import start_broker, start_redis
from modelbus_testing.simulator import provider_calls, simulate

from tests.conftest import start_stack
from tests.faults.ledger import Recorder, check_lineage, tally
from tests.faults.load import produce_at_rate

pytestmark = pytest.mark.faults

N, RATE = 200, 50.0


async def test_redis_restart_mid_load(tmp_path, record_report):
    stack = None
    try:
        from modelbus_cli.processes import ProcessGroup

        redis_group = ProcessGroup(tmp_path / "redis")
        redis_url = start_redis(redis_group, persist=True)
        bootstrap = start_broker(redis_group)  # a broker of its own too (see conftest)
        stack = start_stack(tmp_path / "stack", bootstrap, redis_url,
                            f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
        simulate(stack, "gpt-4o-mini", latency_ms=50)
        ids = [f"redis-{uuid.uuid4().hex[:6]}-{i}" for i in range(N)]
        rec = Recorder(stack.bootstrap)
        await rec.start()
        load = asyncio.create_task(produce_at_rate(stack.bootstrap, ids, RATE))
        await asyncio.sleep(N / RATE / 3)
        redis_group.children[0].stop()  # SIGTERM: valkey flushes its append-only file
        await asyncio.sleep(2.0)
        start_redis(redis_group, port=urlsplit(redis_url).port, persist=True)
        await load
        await rec.wait(ids, timeout=90)
        await rec.stop()
        report = tally("Redis restart mid-load (2 s down)", ids, rec)
        report.provider_calls = provider_calls(stack)
        await check_lineage(stack.database_url, ids, rec, report)
        record_report(report)
        assert report.lost == 0 and report.duplicates == 0, report.notes
        assert report.lineage_incomplete == 0, report.notes
    finally:
        if stack:
            stack.stop()
        redis_group.stop_all()
