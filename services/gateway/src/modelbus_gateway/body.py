"""The request body limit: a body above ``max_body_bytes`` is refused (413) without being
held in memory — at once when ``Content-Length`` says so, else as soon as the bytes
received while streaming pass the limit (chunked uploads have no length). A request event
larger than the router reads (``max_request_bytes``) is refused the same way
(:func:`check_event_size`), rather than left to time out."""

from __future__ import annotations

from starlette.requests import Request

from modelbus_gateway.errors import bad_request, body_too_large, event_too_large
from modelbus_gateway.metrics import REFUSED


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body of ``request`` if it is at most ``limit`` bytes, else a 413."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise bad_request("Content-Length is not a number") from None
        if length > limit:
            REFUSED.labels("body_too_large").inc()
            raise body_too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            REFUSED.labels("body_too_large").inc()
            raise body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def check_event_size(value: bytes, limit: int) -> None:
    """413 when the encoded request event is larger than the event log takes."""
    if len(value) > limit:
        REFUSED.labels("body_too_large").inc()
        raise event_too_large(len(value), limit)
