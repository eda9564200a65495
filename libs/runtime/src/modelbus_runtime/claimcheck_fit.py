"""Making an event's messages fit one Kafka message by claim check.

:func:`fit_messages` checks out every part above the threshold, then, while the event is
still larger than the limit, the largest remaining parts, until it fits or nothing inline is
left to check out. The caller measures its own event (``size_of``) and decides what an event
that still does not fit means (the router answers ``payload_too_large``; the gateway a 413).
"""

from __future__ import annotations

from collections.abc import Callable

from modelbus_schemas import ChatMessage
from modelbus_schemas.content import BlobPart

from modelbus_runtime.claimcheck import BlobStore, check_out, part_bytes

#: Room left in a message for its key and headers (CloudEvents, trace context, signature).
HEADER_ROOM_BYTES = 16 * 1024


async def fit_messages(store: BlobStore, tenant: str, messages: list[ChatMessage],
                       size_of: Callable[[list[ChatMessage]], int], *, threshold_bytes: int,
                       limit_bytes: int) -> tuple[list[ChatMessage], int]:
    """``messages`` with parts checked out until ``size_of(messages) <= limit_bytes`` where
    claim check can make it so, and the size they then make."""
    size = size_of(messages)
    if size <= min(threshold_bytes, limit_bytes):
        return messages, size  # no part can be above the threshold, and it fits
    messages = await check_out(store, tenant, messages, threshold_bytes)
    size = size_of(messages)
    for _ in range(3):  # a reference is small but not nothing: converge in a few passes
        inline = sum(len(part_bytes(p)) for m in messages for p in m.parts()
                     if not isinstance(p, BlobPart))
        if size <= limit_bytes or not inline:
            break
        budget = max(0, inline - (size - limit_bytes) - 1024)
        messages = await check_out(store, tenant, messages, threshold_bytes,
                                   budget_bytes=budget)
        size = size_of(messages)
    return messages, size
