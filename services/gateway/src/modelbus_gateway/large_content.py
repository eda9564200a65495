"""Large content leaves the gateway by claim check, so a call with big images or documents
becomes a request event that fits one Kafka message.

Parts above ``claim_check_threshold_bytes`` (and, while the event is still above
``max_message_bytes``, the largest others) are stored once in the blob store under the
caller's tenant and replaced by hashed references, exactly as the router does for tasks
(:mod:`modelbus_runtime.claimcheck_fit`); workers resolve them within the same tenant. What
claim check cannot shrink (tool-call arguments, framing) and still does not fit is a 413.
"""

from __future__ import annotations

from modelbus_runtime.claimcheck import BlobStore
from modelbus_runtime.claimcheck_fit import HEADER_ROOM_BYTES, fit_messages
from modelbus_schemas import RequestEvent, encode

from modelbus_gateway.errors import event_too_large


class RequestFitter:
    def __init__(self, store: BlobStore, *, threshold_bytes: int, max_message_bytes: int) -> None:
        self.store = store
        self.threshold = threshold_bytes
        self.limit = max_message_bytes - HEADER_ROOM_BYTES

    async def encoded(self, event: RequestEvent) -> bytes:
        """The event's Kafka value, its large parts checked out; a 413 if it cannot fit."""
        messages, size = await fit_messages(
            self.store, event.caller.tenant, event.messages,
            lambda ms: len(encode(event.model_copy(update={"messages": ms}))),
            threshold_bytes=self.threshold, limit_bytes=self.limit)
        if size > self.limit:
            raise event_too_large(size, self.limit)
        return encode(event.model_copy(update={"messages": messages}))
