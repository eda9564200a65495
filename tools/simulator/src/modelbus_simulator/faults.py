"""Fault injection shared by the provider endpoints.

`pre_response` turns a plan's scripted failure into a response before any normal work:
`status` -> the provider's error body (+ `Retry-After` when scripted), `hang` -> wait
until the client disconnects, the server shuts down (then 503) or `hang_s` (default 3600 s), `malformed` -> HTTP 200 whose body is not valid JSON
(or an SSE frame whose data is not JSON).  `truncate` is applied by the endpoints:
`body_response` cuts the body in half; streams stop before their terminal event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .behaviour import Plan

ErrorFn = Callable[[int, str, dict[str, str] | None], Response]

MALFORMED_JSON = b'{"id": "sim-malformed", "choices": [ <<not json>>'

DEFAULT_MESSAGES = {
    400: "Simulated bad request.",
    401: "Simulated authentication failure.",
    403: "Simulated permission failure.",
    404: "Simulated not found.",
    429: "Simulated rate limit exceeded. Please retry later.",
    500: "Simulated internal server error.",
    503: "Simulated service unavailable.",
    529: "Simulated overloaded.",
}


def retry_after_value(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def json_response(
    obj: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(obj), status_code=status, media_type="application/json", headers=headers
    )


async def hang(request: Request, timeout_s: float, release: asyncio.Event) -> None:
    """Wait until the client disconnects, `release` is set (shutdown) or the timeout."""

    async def _disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    waiters = {asyncio.ensure_future(_disconnected()), asyncio.ensure_future(release.wait())}
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def pre_response(
    plan: Plan,
    request: Request,
    error: ErrorFn,
    stream: bool,
    malformed_frame: bytes,
    release: asyncio.Event,
) -> Response | None:
    f = plan.failure
    if f is None or f.kind == "truncate":
        return None
    if f.kind == "status":
        headers = None
        if f.retry_after_s is not None:
            headers = {"retry-after": retry_after_value(f.retry_after_s)}
        msg = f.message or DEFAULT_MESSAGES.get(f.status, f"Simulated HTTP {f.status}.")
        return error(f.status, msg, headers)
    if f.kind == "hang":
        await hang(request, f.hang_s, release)
        return error(503, "Simulated hang ended (simulator shutting down or hang_s elapsed).", None)
    # malformed
    if plan.delay_s > 0:
        await asyncio.sleep(plan.delay_s)
    if stream:
        return Response(malformed_frame, media_type="text/event-stream")
    return Response(MALFORMED_JSON, media_type="application/json")


def body_response(plan: Plan, obj: object) -> Response:
    """The success body; cut in half (still HTTP-valid, JSON-invalid) under `truncate`."""
    raw = orjson.dumps(obj)
    if plan.failure is not None and plan.failure.kind == "truncate":
        raw = raw[: len(raw) // 2]
    return Response(raw, media_type="application/json")


async def read_json(request: Request) -> dict | None:
    """The request body as a JSON object, or None if it is not one."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def int_or_none(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None
