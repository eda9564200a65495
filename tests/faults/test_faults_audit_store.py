"""The audit store (PostgreSQL) unreachable for 30 s in the middle of load.

The audit service reaches its database through a TCP proxy that is cut for 30 s while
requests keep coming. The pipeline must keep answering (nothing else needs the audit store),
the audit service must retry in place instead of skipping or crashing, and once the link is
back it must catch up: every event stored once, lineage complete, the hash chains intact.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from modelbus_audit.store import AuditStore
from modelbus_audit.tables import audit_events
from modelbus_testing.pg import temporary_postgres_database
from modelbus_testing.simulator import provider_calls, simulate
from modelbus_testing.tcp_proxy import TcpProxy
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tests.conftest import start_stack
from tests.faults.ledger import Recorder, check_lineage, tally
from tests.faults.load import produce_at_rate

pytestmark = pytest.mark.faults

N, RATE = 500, 10.0
CUT_AT_S, OUTAGE_S = 10.0, 30.0
#: requests due this long after the cut must be answered before the link is restored
ANSWERED_DURING_S = 15.0
#: a summarize request is audited as one request, one task, one result and one response
KINDS = {"request", "task", "result", "response"}


@pytest.fixture
def audit_database():
    with temporary_postgres_database("modelbus_faults_audit") as url:
        yield url


@pytest.fixture
def store_link(audit_database):
    url = make_url(audit_database)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    yield proxy
    proxy.close()


async def stored_rows(store: AuditStore, prefix: str) -> Counter[tuple[str, str]]:
    """Rows per (request id, kind) of this run's requests."""
    query = (select(audit_events.c.request_id, audit_events.c.kind, func.count())
             .where(audit_events.c.request_id.like(prefix + "%"))
             .group_by(audit_events.c.request_id, audit_events.c.kind))
    async with store.engine.connect() as connection:
        return Counter({(rid, kind): n for rid, kind, n in await connection.execute(query)})


async def test_audit_store_down_30s_pipeline_answers_and_audit_catches_up(
        tmp_path, private_infra, audit_database, store_link, record_report):
    stack = start_stack(tmp_path / "stack", private_infra.bootstrap, private_infra.redis_url,
                        store_link.route(audit_database))
    store = await AuditStore.open(audit_database)  # direct, not through the proxy
    try:
        simulate(stack, "gpt-4o-mini", latency_ms=50)
        prefix = f"auditdown-{uuid.uuid4().hex[:6]}-"
        ids = [f"{prefix}{i}" for i in range(N)]
        rec = Recorder(stack.bootstrap)
        await rec.start()
        load = asyncio.create_task(produce_at_rate(stack.bootstrap, ids, RATE))
        await asyncio.sleep(CUT_AT_S)
        store_link.cut()
        try:
            await asyncio.sleep(2.0)
            rows_after_cut = sum((await stored_rows(store, prefix)).values())
            await asyncio.sleep(OUTAGE_S - 3.0)
            rows_before_restore = sum((await stored_rows(store, prefix)).values())
            answered_while_down = set(rec.responses)
        finally:
            store_link.restore()
        delivery = await load
        await rec.wait(delivery.accepted, timeout=120)
        await rec.stop()

        report = tally("audit store (PostgreSQL) down 30 s", delivery.accepted, rec)
        report.provider_calls = provider_calls(stack)
        await check_lineage(audit_database, delivery.accepted, rec, report, timeout=120)
        rows = await stored_rows(store, prefix)
        chains = await store.verify()
        report.notes.append(f"audit rows of this run: {rows_after_cut} at the cut, "
                            f"{rows_before_restore} at the restore, {sum(rows.values())} after "
                            f"catch-up; chains: {chains.describe().splitlines()[0]}")
        record_report(report)
        audit_log = (stack.workdir / "logs" / "audit.log").read_text(errors="replace")
        due_while_down = ids[:int((CUT_AT_S + ANSWERED_DURING_S) * RATE)]
        unanswered_while_down = [i for i in due_while_down if i not in answered_while_down]
        badly_stored = [(rid, kind, rows[rid, kind]) for rid in delivery.accepted
                        for kind in KINDS if rows[rid, kind] != 1]

        assert sorted(delivery.accepted) == sorted(ids), delivery.refused[:5]
        assert rows_before_restore == rows_after_cut, "rows were written through a cut link"
        assert "dependency unavailable, retrying in place" in audit_log
        assert stack.child("audit").proc.poll() is None, "the audit service exited"
        assert unanswered_while_down == [], f"pipeline stalled: {unanswered_while_down[:5]}"
        assert report.lost == 0, report.notes
        assert report.duplicates == 0, report.notes
        assert report.errors == 0
        assert report.lineage_incomplete == 0, report.notes
        assert badly_stored == [], f"(request, kind, rows) not stored once: {badly_stored[:5]}"
        assert chains.ok, chains.describe()
    finally:
        await store.close()
        stack.stop()
