"""The SERVER span and the access log line of every API call.

:func:`observed` wraps a route handler. The call gets its request id (``gw-<hex>``) first;
its span continues the caller's W3C ``traceparent`` (a caller that does not trace gets the
trace id the rest of modelbus derives from the request id, so the gateway's line and span
join the same trace as every service). The span is current while the handler runs, so the
request event it publishes carries the span's context in its ``traceparent`` header and the
router, workers, aggregator and audit continue the same trace. When no exporter is
configured no span is built and the caller's context is carried on unchanged
(:func:`modelbus_runtime.tracing.span_or_carry`).

Once answered, one JSON line at INFO on the ``modelbus.gateway.access`` logger: method,
path, status, duration, request id, trace id, key id, tenant and client address. Never the
key, a header value or the body.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson
from modelbus_runtime.logging import log_fields, request_id_var
from modelbus_runtime.tracing import extract, span_or_carry
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.requests import Request
from starlette.responses import Response

from modelbus_gateway.errors import GatewayError

log = logging.getLogger("modelbus.gateway.access")
JSON = "application/json"


@dataclass
class CallRecord:
    """What the access log and span say of a call; the handler fills in who called."""

    request_id: str
    key_id: str | None = None
    tenant: str | None = None
    started: float = field(default_factory=time.perf_counter)  # when the request arrived


Handler = Callable[[Request, CallRecord], Awaitable[Response]]
Done = Callable[[int, float], None]


def error_response(err: GatewayError, request_id: str | None = None) -> Response:
    headers = err.headers()
    if request_id:
        headers["x-request-id"] = request_id
    return Response(orjson.dumps(err.body()), err.status, headers, JSON)


def observed(route: str, handler: Handler, *, access_log: bool = True,
             done: Done | None = None) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of ``handler``: span, request id, error rendering, access log, and
    ``done(status, seconds)`` (metrics) once answered."""

    async def endpoint(request: Request) -> Response:
        record = CallRecord("gw-" + uuid.uuid4().hex)
        started = record.started
        client = request.client.host if request.client else None
        token = request_id_var.set(record.request_id)
        parent = extract(request.headers, record.request_id)
        try:
            with span_or_carry(f"{request.method} {route}", parent, kind=SpanKind.SERVER,
                               attributes=lambda: _span_attributes(request, route, client,
                                                                   record)) as span:
                try:
                    response = await handler(request, record)
                except GatewayError as err:
                    response = error_response(err, record.request_id)
                except Exception:  # a bug answers 500 in OpenAI's shape, and is logged
                    log.exception("unhandled error in %s", route)
                    response = error_response(GatewayError(
                        500, "internal error", "server_error", "internal"), record.request_id)
                seconds = time.perf_counter() - started
                status = response.status_code
                if span.is_recording():
                    _finish_span(span, record, status)
                if done is not None:
                    done(status, seconds)
                if access_log:
                    _access_line(request, record, status, seconds, client, span)
        finally:
            request_id_var.reset(token)
        return response

    return endpoint


def _span_attributes(request: Request, route: str, client: str | None,
                     record: CallRecord) -> dict:
    attributes = {
        "http.request.method": request.method,
        "http.route": route,
        "url.path": request.url.path,
        "url.scheme": request.url.scheme,
        "modelbus.service": "gateway",
        "modelbus.request_id": record.request_id,
    }
    if client:
        attributes["client.address"] = client
    if request.url.port:
        attributes["server.port"] = request.url.port
    return attributes


def _finish_span(span, record: CallRecord, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("modelbus.request_id", record.request_id)
    if record.tenant:
        span.set_attribute("modelbus.tenant", record.tenant)
    if record.key_id:
        span.set_attribute("modelbus.key_id", record.key_id)
    if status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))


def _access_line(request: Request, record: CallRecord, status: int, seconds: float,
                 client: str | None, span) -> None:
    context = span.get_span_context()
    log.info("%s %s %d", request.method, request.url.path, status, extra=log_fields(
        kind="access", method=request.method, path=request.url.path, status=status,
        duration_ms=round(seconds * 1000, 3), request_id=record.request_id,
        trace_id=format(context.trace_id, "032x") if context.is_valid else None,
        key_id=record.key_id, tenant=record.tenant, client=client))
