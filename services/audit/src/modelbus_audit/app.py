"""Audit composition root: every ``modelbus.*`` topic (DLQs included) into the lineage store,
and the query API on the service's HTTP port.

Subscribes by pattern (``AUDIT_PATTERN``: every ``modelbus.*`` and ``replies.*`` topic but the
stream topic, whose count and time to first token the response carries), so a new topic, a
policy's reply topic included, is audited without a change. The audit checks
signatures itself (with the service's signing ring) and stores unauthenticated records,
flagged, rather than sending them to a DLQ: they are evidence. Each batch is made safe to
store (:mod:`modelbus_audit.privacy`) and written in one transaction; when the store is down
the batch is retried in place and nothing is committed, so the consumer catches up afterwards
with no row lost. The query API and compliance page (:mod:`modelbus_audit.api`) are mounted
on the health server next to ``/healthz``; a retention task purges old text when configured,
a checkpoint task signs the chain heads written (:mod:`modelbus_audit.checkpoints`), and a
maintenance task creates the PostgreSQL day partitions ahead and archives closed days to the
customer's bucket before dropping them (:mod:`modelbus_audit.archive`).
"""

from __future__ import annotations

import asyncio

from modelbus_runtime.claimcheck import build_blob_store
from modelbus_runtime.consumer import EventConsumer
from modelbus_runtime.errors import TransientInfraError
from modelbus_runtime.inbound import Inbound
from modelbus_runtime.service import Service, ServiceContext, run_service
from modelbus_schemas.topics import AUDIT_PATTERN
from starlette.routing import Mount

from modelbus_audit.api import create_api
from modelbus_audit.archive import run_archive
from modelbus_audit.archive_target import ArchiveTarget
from modelbus_audit.checkpoints import run_checkpoints
from modelbus_audit.db import database_url_from_env
from modelbus_audit.privacy import protect
from modelbus_audit.record import AuditRecord
from modelbus_audit.retention import run_retention
from modelbus_audit.settings import AuditSettings
from modelbus_audit.store import AuditStore, AuditStoreUnavailable


async def build(ctx: ServiceContext) -> Service:
    settings: AuditSettings = ctx.settings  # type: ignore[assignment]
    policy, keys, ring = settings.privacy_policy(), settings.api_keys(), settings.signing_ring()
    store = await AuditStore.open(database_url_from_env(), ring=ring)

    async def write(batch: list[Inbound]) -> None:
        records = [
            protect(AuditRecord.from_message(
                m.topic, m.partition, m.offset, m.key, m.value, m.headers, m.timestamp_ms, ring
            ), policy)
            for m in batch
        ]
        try:
            await store.write(records)
        except AuditStoreUnavailable as exc:
            raise TransientInfraError(str(exc)) from exc

    consumer = EventConsumer(
        settings, group_id=settings.audit_group_id,
        fetch_max_wait_ms=settings.audit_fetch_max_wait_ms,
        idle_fetch_max_wait_ms=settings.audit_idle_fetch_max_wait_ms,
        min_fetch_interval_ms=settings.audit_min_fetch_interval_ms,
        pattern=AUDIT_PATTERN, dlq=ctx.dlq, batch_handler=write,
        authenticate=False,  # checked per record above: flagged and stored, not dead-lettered
    )
    stop_tasks = asyncio.Event()
    tasks = [asyncio.create_task(run_checkpoints(
        store, settings.audit_checkpoint_interval_s, stop_tasks)),
        asyncio.create_task(run_archive(
            store.engine, ArchiveTarget.from_settings(settings), settings.audit_archive_after_days,
            settings.audit_maintenance_interval_s, stop_tasks, ring))]
    blobs = build_blob_store(settings) if settings.audit_retention_days > 0 else None
    if blobs is not None:
        tasks.append(asyncio.create_task(run_retention(
            store, settings.audit_retention_days, settings.audit_retention_interval_s,
            stop_tasks, blobs=blobs)))

    async def close() -> None:
        stop_tasks.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()
        if blobs is not None:
            await blobs.close()

    return Service(consumers=[consumer], closers=[close],
                   routes=[Mount("", app=create_api(store, keys))])


def main() -> None:
    run_service("audit", AuditSettings(), build)


if __name__ == "__main__":
    main()
