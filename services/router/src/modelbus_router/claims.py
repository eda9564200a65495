"""Large content in and out of the router by claim check. Knows nothing of Kafka.

In: a request may arrive with content parts already claim-checked (the gateway stores what
would not fit a request event). :meth:`ClaimCheck.resolve` reads them back within the
request's tenant and verifies their hashes before anything else, so the input guardrails,
token estimates, rules and cache key of this route see the real content: a reference can
never bring content screened under another request (another route's guardrails) past this
one. A reference that does not resolve (another tenant's, removed by retention, tampered)
is ``invalid_request``.

Out: before the tasks are handed over, :meth:`ClaimCheck.fit` makes each fit one Kafka
message (``max_message_bytes``, what every consumer accepts) with
:func:`modelbus_runtime.claimcheck_fit.fit_messages`: parts above the threshold are stored
once and replaced by hashed references the worker resolves, then more parts, largest first,
while the task is too large. What cannot travel by claim check (context blocks, tool-call
arguments, embedding inputs, framing) and still does not fit makes the request fail with
``payload_too_large``, naming the limit, before any provider call and before budgets are
reserved: never a dead letter without an answer.
"""

from __future__ import annotations

from modelbus_runtime.claimcheck import (
    BlobStore,
    ClaimCheckError,
    build_blob_store,
    has_blobs,
    resolve_messages,
)
from modelbus_runtime.claimcheck_fit import HEADER_ROOM_BYTES, fit_messages
from modelbus_schemas import ErrorCode, RequestEvent, TaskEvent
from modelbus_schemas.codec import encode

from modelbus_router.errors import RoutingError


class _PutOnce:
    """The store, putting each blob of one request once (ensemble parts share content)."""

    def __init__(self, store: BlobStore) -> None:
        self.store, self.kind, self.done = store, store.kind, set()

    async def put(self, tenant: str, sha256: str, data: bytes) -> None:
        if sha256 not in self.done:
            self.done.add(sha256)
            await self.store.put(tenant, sha256, data)


class ClaimCheck:
    def __init__(self, store: BlobStore, *, threshold_bytes: int, max_message_bytes: int) -> None:
        self.store = store
        self.threshold = threshold_bytes
        self.limit = max_message_bytes - HEADER_ROOM_BYTES

    @classmethod
    def from_settings(cls, settings) -> ClaimCheck:
        return cls(build_blob_store(settings), threshold_bytes=settings.claim_check_threshold_bytes,
                   max_message_bytes=settings.max_message_bytes)

    async def resolve(self, request: RequestEvent) -> RequestEvent:
        """``request`` with its claim-checked parts read back (``invalid_request`` if one
        cannot be)."""
        if not has_blobs(request.messages):
            return request
        try:
            messages = await resolve_messages(self.store, request.caller.tenant,
                                              request.messages)
        except ClaimCheckError as exc:
            raise RoutingError(ErrorCode.INVALID_REQUEST, str(exc)) from None
        return request.model_copy(update={"messages": messages})

    async def fit(self, tasks: list[TaskEvent]) -> list[TaskEvent]:
        """``tasks`` with large parts checked out; ``payload_too_large`` if one cannot fit."""
        store = _PutOnce(self.store)
        return [await self._fit(store, task) for task in tasks]

    async def _fit(self, store: _PutOnce, task: TaskEvent) -> TaskEvent:
        messages, size = await fit_messages(
            store, task.tenant, task.messages,
            lambda ms: len(encode(task.model_copy(update={"messages": ms}))),
            threshold_bytes=self.threshold, limit_bytes=self.limit)
        if size > self.limit:
            raise RoutingError(ErrorCode.PAYLOAD_TOO_LARGE, (
                f"the request does not fit on the bus: {size} bytes after claim check, the "
                f"limit is {self.limit} bytes (max_message_bytes {self.limit + HEADER_ROOM_BYTES}"
                f" less {HEADER_ROOM_BYTES} for headers). Message content parts travel by "
                "claim check; context blocks, tool-call arguments, embedding inputs and "
                "message framing travel inline: shorten those"))
        return task if messages is task.messages else task.model_copy(
            update={"messages": messages})
