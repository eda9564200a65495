"""The compliance query API (FastAPI, OpenAPI at ``/openapi.json``, docs at ``/docs``).

Every ``/v1`` endpoint needs an ``X-API-Key`` (see :mod:`modelbus_audit.auth`); role ``ops``
gets metadata only, role ``compliance`` also the stored text; ``/v1/requests/{id}/text`` is
compliance-only (403 for ops). Endpoints: lineage of a request (tree + timeline), search
(keyset pages by event time and row id), usage and cost report by day, team and model, export (JSONL, CSV,
Parquet), verify (quick, from the last signed checkpoints; or as a background job with progress).
The compliance page (:mod:`modelbus_audit.ui`) is mounted under ``/ui``.

The app only reads; ``create_api`` takes an open :class:`AuditStore`, so it runs inside the
audit consumer (mounted on its health port) or on its own (:mod:`modelbus_audit.api_main`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import APIKeyHeader

from modelbus_audit import export
from modelbus_audit.auth import ApiKeys
from modelbus_audit.jobs import VerifyJobs, report_dict
from modelbus_audit.lineage import by_tenant
from modelbus_audit.queries import MAX_PAGE, Filters, cursor_of, parse_cursor
from modelbus_audit.store import AuditStore, AuditStoreError
from modelbus_audit.views import Role, event_dict, lineage_dict, text_of

KEY_HEADER = "X-API-Key"
COOKIE = "modelbus_audit_key"
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: such input is a 422, not a 500
_key_header = APIKeyHeader(name=KEY_HEADER, auto_error=False,
                           description="An audit API key (role compliance or ops)")

Text = Annotated[str | None, Query(max_length=256, pattern=NO_NUL)]
Short = Annotated[str | None, Query(max_length=32, pattern=NO_NUL)]
When = Annotated[datetime | None, Query(description="ISO-8601; no zone means UTC")]


def role_of(request: Request, key: str | None) -> Role | None:
    keys: ApiKeys = request.app.state.keys
    return keys.role_for(key or request.cookies.get(COOKIE))


async def any_role(request: Request, key: str | None = Security(_key_header)) -> Role:
    role = role_of(request, key)
    if role is None:
        raise HTTPException(401, "a valid X-API-Key is required",
                            headers={"WWW-Authenticate": "ApiKey"})
    return role


AnyRole = Annotated[Role, Depends(any_role)]


async def compliance_role(role: AnyRole) -> Role:
    if not role.reads_text:
        raise HTTPException(403, f"role {role.value} may not read stored text")
    return role


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC) if value.year < 2 else datetime.max.replace(
            tzinfo=UTC)


def filters(
    tenant: Text = None, team: Text = None, user: Text = None, task: Text = None,
    provider: Text = None, model: Text = None, data_class: Short = None, status: Short = None,
    kind: Short = None, request_id: Text = None, since: When = None, until: When = None,
) -> Filters:
    return Filters(tenant=tenant, team=team, user=user, task=task, provider=provider,
                   model=model, data_class=data_class, status=status, kind=kind,
                   request_id=request_id, since=_utc(since), until=_utc(until))


ComplianceRole = Annotated[Role, Depends(compliance_role)]
SearchFilters = Annotated[Filters, Depends(filters)]


def create_api(store: AuditStore, keys: ApiKeys) -> FastAPI:
    app = FastAPI(
        title="modelbus audit",
        version="1",
        description="Lineage, search, usage reports, exports and integrity of the audit store.",
    )
    app.state.store, app.state.keys = store, keys

    @app.exception_handler(AuditStoreError)
    async def _store_down(_: Request, exc: AuditStoreError) -> JSONResponse:
        return JSONResponse({"detail": "audit store unavailable, retry later"}, status_code=503)

    async def _lineage(request_id: str, tenant: str | None):
        if len(request_id) > 256 or "\x00" in request_id:
            raise HTTPException(404, "no audit records for this request")
        events = await store.lineage(request_id, tenant)
        if not events:
            raise HTTPException(404, "no audit records for this request")
        lineages = by_tenant(request_id, events)
        if len(lineages) > 1:
            raise HTTPException(409, "this request id was used by several tenants "
                                f"({', '.join(str(x.tenant) for x in lineages)}): "
                                "pass ?tenant= to pick one")
        return lineages[0]

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"service": "audit-api", "status": "alive"}

    @app.get("/v1/requests/{request_id}/lineage", tags=["lineage"])
    async def lineage(request_id: str, role: AnyRole, tenant: Text = None) -> dict[str, Any]:
        """request → routing decision → parts (tasks, attempts, results) → response, as a tree
        and as a time-ordered timeline. Prompt and response text only for role compliance.
        A request is (tenant, request id): a request id several tenants used needs
        ``tenant`` (409 otherwise). Flagged rows (conflict, unauthenticated, undecoded) are
        listed under ``flagged``, never as steps."""
        return lineage_dict(await _lineage(request_id, tenant), role)

    @app.get("/v1/requests/{request_id}/text", tags=["lineage"])
    async def request_text(request_id: str, role: ComplianceRole, tenant: Text = None) -> dict:
        """The stored prompt and answers of a request (role compliance only)."""
        return text_of(await _lineage(request_id, tenant))

    @app.get("/v1/events", tags=["search"])
    async def search(
        f: SearchFilters, role: AnyRole,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        after: Annotated[str | None, Query(max_length=48, pattern=r"^(-?[0-9]+-)?[0-9]+$",
                                           description="next_after of the previous page")] = None,
    ) -> dict[str, Any]:
        """Events matching every given filter, oldest first (event time, then row id); follow
        ``next_after``."""
        try:
            parse_cursor(after or "0")
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        events = await store.search(f, limit, after)
        return {
            "items": [event_dict(e, role) for e in events],
            "next_after": cursor_of(events[-1]) if len(events) == limit else None,
        }

    @app.get("/v1/reports/usage", tags=["reports"])
    async def usage(f: SearchFilters, role: AnyRole) -> dict:
        """Provider results by UTC day, team and model: requests, tokens and cost."""
        rows = await store.usage_report(f)
        return {"rows": rows, "total_cost_usd": round(sum(r["cost_usd"] for r in rows), 9)}

    @app.get("/v1/export", tags=["export"], response_class=StreamingResponse,
             responses={200: {"content": {t: {} for t in export.MEDIA_TYPES.values()}}})
    async def export_events(
        f: SearchFilters, role: AnyRole,
        format: Literal["jsonl", "csv", "parquet"] = "jsonl",
        limit: Annotated[int | None, Query(ge=1, le=10_000_000)] = None,
    ) -> StreamingResponse:
        """Every matching event as a file; text columns empty for role ops."""
        pages = export.iter_rows(store, f, role, limit)
        name = f"audit-export.{format}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return StreamingResponse(export.stream_export(pages, format), media_type=export.MEDIA_TYPES[format], headers=headers)

    jobs = app.state.verify_jobs = VerifyJobs(store)

    @app.get("/v1/verify", tags=["integrity"])
    async def verify(role: AnyRole) -> dict[str, Any]:
        """Check every hash chain from its last signed checkpoint (quick); report the first
        row of each chain that does not hold. A full check runs as a job: ``/v1/verify/jobs``."""
        return report_dict(await store.verify())

    @app.post("/v1/verify/jobs", tags=["integrity"], status_code=202)
    async def start_verify(role: AnyRole, full: bool = False) -> dict[str, Any]:
        """Start verifying in the background (``full``: every row of every chain, else from
        the last signed checkpoints); poll ``/v1/verify/jobs/{id}`` for progress and report.
        While one runs, this returns it instead of starting another."""
        return jobs.start(full).as_dict()

    @app.get("/v1/verify/jobs/{job_id}", tags=["integrity"])
    async def verify_job(job_id: str, role: AnyRole) -> dict[str, Any]:
        """A verification job: state (running, done, failed), progress, and its report."""
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, "no such verification job")
        return job.as_dict()

    from modelbus_audit.ui import ui_router  # the page reuses this module's auth helpers

    app.include_router(ui_router(store))
    return app
