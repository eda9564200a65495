"""The audit commands the ``modelbus`` CLI wires in: plain async functions returning text.

``show`` prints a request's lineage (text or JSON); ``search`` a page of matching events;
``report`` usage and cost by day, team and model; ``export`` writes JSONL/CSV/Parquet with a
progress callback; ``purge`` empties old text (retention); ``archive`` archives closed days to
the bucket and drops them from the live store; ``query`` runs SQL over the archive and the live
store (:mod:`modelbus_audit.query`); ``verify`` checks every hash chain, with ``archive`` the
archived files (:mod:`modelbus_audit.archive_verify`), and, against a broker, that every record
of every audited topic was stored.
All open the store at ``url`` or, by default, at :func:`modelbus_audit.db.database_url_from_env`.
The CLI reads the database directly, so it sees stored text; ``metadata_only`` gives the
``ops`` view.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from modelbus_audit.lineage import by_tenant
from modelbus_audit.queries import Filters, cursor_of
from modelbus_audit.render import render_all
from modelbus_audit.store import AuditStore

if TYPE_CHECKING:  # loaded by the commands that use them: ``show`` stays quick to start
    from modelbus_audit.broker_check import Progress
    from modelbus_audit.export import Progress as ExportProgress
    from modelbus_audit.verify import Progress as ChainProgress

#: ``req_team`` and ``req_user``: the request's caller, shown on its results and responses too.
SEARCH_COLUMNS = ("id", "event_time", "kind", "request_id", "tenant", "req_team", "req_user",
                  "task", "provider", "model", "req_data_class", "status", "cost_usd")
REPORT_COLUMNS = ("day", "team", "provider", "model", "requests", "results", "input_tokens",
                  "output_tokens", "cost_usd")


@asynccontextmanager
async def _opened(url: str | None) -> AsyncIterator[AuditStore]:
    store = await AuditStore.open(url)
    try:
        yield store
    finally:
        await store.close()


async def show(request_id: str, url: str | None = None, as_json: bool = False,
               tenant: str | None = None) -> str:
    """The lineage of ``request_id`` (of ``tenant``) as terminal text, or as indented JSON.
    Without ``tenant``, a request id several tenants used gives one lineage per tenant
    (JSON: ``{"request_id", "tenants", "lineages"}``)."""
    async with _opened(url) as store:
        lineages = by_tenant(request_id, await store.lineage(request_id, tenant))
    if as_json:
        if len(lineages) == 1:
            return json.dumps(lineages[0].to_dict(), indent=2, default=str)
        return json.dumps({"request_id": request_id,
                           "tenants": [lineage.tenant for lineage in lineages],
                           "lineages": [lineage.to_dict() for lineage in lineages]},
                          indent=2, default=str)
    return render_all(request_id, lineages)


async def search(filters: Filters, url: str | None = None, limit: int = 50,
                 after: str | None = None,
                 as_json: bool = False) -> str:
    from modelbus_audit.views import Role, event_dict

    async with _opened(url) as store:
        events = await store.search(filters, limit, after)
    rows = [event_dict(e, Role.OPS) for e in events]
    if as_json:
        return "\n".join(json.dumps(r, default=str) for r in rows)
    more = f"\nnext page: --after {cursor_of(events[-1])}" if len(events) == limit else ""
    return _table(rows, SEARCH_COLUMNS) + f"\n{len(rows)} events" + more


async def report(filters: Filters, url: str | None = None, as_json: bool = False) -> str:
    async with _opened(url) as store:
        rows = await store.usage_report(filters)
    if as_json:
        return json.dumps(rows, indent=2)
    total = sum(r["cost_usd"] for r in rows)
    return _table(rows, REPORT_COLUMNS) + f"\ntotal cost ${total:.6f}"


async def export(filters: Filters, fmt: str, path: Path, url: str | None = None,
                 metadata_only: bool = False, limit: int | None = None,
                 progress: ExportProgress | None = None) -> int:
    """Write matching events to ``path``; return the number of rows."""
    from modelbus_audit import export as exporter
    from modelbus_audit.views import Role

    role = Role.OPS if metadata_only else Role.COMPLIANCE
    async with _opened(url) as store:
        with open(path, "wb") as sink:  # noqa: ASYNC230 - a CLI, nothing else on the loop
            pages = exporter.iter_rows(store, filters, role, limit)
            return await exporter.write_export(pages, fmt, sink, progress)


async def purge(older_than_days: float, url: str | None = None) -> tuple[int, int]:
    """Retention now: (rows whose text was purged, claim-checked blobs deleted)."""
    from modelbus_runtime.claimcheck import build_blob_store

    from modelbus_audit import retention
    from modelbus_audit.settings import AuditSettings

    settings = AuditSettings()
    if url and not settings.blob_url:  # the blobs live beside the store named here
        settings = settings.model_copy(update={"blob_database_url": url})
    blobs = build_blob_store(settings)
    try:
        async with _opened(url) as store:
            return await retention.purge(
                store, blobs, datetime.now(UTC) - timedelta(days=older_than_days))
    finally:
        await blobs.close()


async def verify(url: str | None = None, against_broker: str | None = None,
                 progress: Progress | None = None, quiet_s: float = 2.0, full: bool = False,
                 workers: int = 1, chain_progress: ChainProgress | None = None,
                 archive: bool = False) -> tuple[bool, str]:
    """Whether the chains verify (from their last signed checkpoints; ``full``: every row,
    in ``workers`` processes), and the report as text. With ``archive``, also whether every
    archived file matches its manifest and every manifest the archive chain. With
    ``against_broker`` (a bootstrap address), also whether the store holds every record of
    every audited topic (:mod:`modelbus_audit.broker_check`)."""
    from modelbus_audit.settings import AuditSettings

    settings = AuditSettings()
    ring = settings.signing_ring()
    store = await AuditStore.open(url, ring=ring)
    try:
        report = await store.verify(full=full, workers=workers, progress=chain_progress)
        ok, text = report.ok, report.describe()
        if archive:
            from modelbus_audit.archive_verify import verify_archive

            archived = await verify_archive(store.engine, _target(settings), ring)
            ok, text = ok and archived.ok, text + "\n" + archived.describe()
        if against_broker:
            from modelbus_audit.broker_check import check_against_broker

            broker = await check_against_broker(
                store, against_broker, ring=ring, quiet_s=quiet_s, progress=progress)
            ok, text = ok and broker.ok, text + "\n" + broker.describe()
    finally:
        await store.close()
    return ok, text


async def archive(after_days: int, url: str | None = None) -> str:
    """Archive now every day that ended more than ``after_days`` days ago; what was done."""
    from modelbus_audit.archive import archive_closed
    from modelbus_audit.settings import AuditSettings

    settings = AuditSettings()
    target = _target(settings)
    async with _opened(url) as store:
        done = await archive_closed(store.engine, target, after_days, settings.signing_ring())
    lines = [f"{d.day}: {d.rows} rows in {d.files} files, manifest {d.manifest_key}"
             for d in done]
    return "\n".join([*lines, f"{len(done)} days archived to {target}"])


async def query(sql: str, url: str | None = None, since: datetime | None = None,
                until: datetime | None = None, as_json: bool = False) -> str:
    """``sql`` over ``events`` (archive and live store), ``archived_events``, ``live_events``."""
    from modelbus_audit.archive_target import ArchiveTarget
    from modelbus_audit.query import as_dicts, run_query
    from modelbus_audit.settings import AuditSettings

    target = ArchiveTarget.from_settings(AuditSettings())
    async with _opened(url) as store:
        columns, rows = await run_query(store.engine, target, sql, since, until)
    found = as_dicts(columns, rows)
    if as_json:
        return "\n".join(json.dumps(r, default=str) for r in found)
    return _table(found, tuple(columns)) + f"\n{len(found)} rows"


def _target(settings):
    from modelbus_audit.archive_target import ArchiveTarget

    target = ArchiveTarget.from_settings(settings)
    if target is None:
        raise SystemExit("no archive bucket: set MODELBUS_AUDIT_ARCHIVE_BUCKET "
                         "(and _ENDPOINT_URL, _PREFIX, credentials)")
    return target


def _table(rows: list[dict], columns: tuple[str, ...]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))
    return "\n".join([line(list(columns))] + [line(r) for r in cells]).rstrip()


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}"
    text = str(value)
    return text if text.isprintable() else text.encode("unicode_escape").decode()
