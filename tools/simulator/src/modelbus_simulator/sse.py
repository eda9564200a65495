"""Server-sent-event framing and the streaming response used by every provider.

`data(obj)` / `event(name, obj)` encode one SSE frame with orjson; `DONE` is OpenAI's
terminator.  `stream_response` wraps an async generator of frames, applying the
plan's time-to-first-chunk and inter-chunk delays.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import orjson
from starlette.responses import StreamingResponse

DONE = b"data: [DONE]\n\n"
_HEADERS = {"cache-control": "no-cache"}


def data(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def event(name: str, obj: object) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


async def _paced(frames: Iterable[bytes], ttft_s: float, gap_s: float) -> AsyncIterator[bytes]:
    if ttft_s > 0:
        await asyncio.sleep(ttft_s)
    first = True
    for frame in frames:
        if not first and gap_s > 0:
            await asyncio.sleep(gap_s)
        first = False
        yield frame


def stream_response(
    frames: Iterable[bytes], ttft_s: float = 0.0, gap_s: float = 0.0
) -> StreamingResponse:
    """Stream pre-built frames.  Ending early (truncate) is just a shorter frame list."""
    return StreamingResponse(
        _paced(frames, ttft_s, gap_s), media_type="text/event-stream", headers=_HEADERS
    )
