"""Tasks that fit on the bus: large content goes by claim check, the rest is refused clearly.

Before the router hands tasks over, :meth:`ClaimCheck.fit` makes each one fit a Kafka
message (``max_message_bytes``, what every consumer accepts): content parts above the
claim-check threshold are stored once in the blob store (:mod:`modelbus_runtime.claimcheck`)
and replaced by hashed references the worker resolves; if the task is still too large, more
parts are checked out, largest first. What cannot travel by claim check (context blocks,
tool-call arguments, embedding inputs, many small parts) and still does not fit makes the
request fail with ``payload_too_large``, a message naming the limit, before any provider
call: never a dead letter without an answer.

Runs after screening and planning (guards, token estimates and the cache key see the real
content) and before budgets are reserved. Knows nothing of Kafka.
"""

from __future__ import annotations

from modelbus_runtime.claimcheck import BlobStore
from modelbus_runtime.claimcheck_fit import HEADER_ROOM_BYTES, fit_messages
from modelbus_schemas import ErrorCode, TaskEvent
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
        from modelbus_runtime.claimcheck import build_blob_store

        return cls(build_blob_store(settings), threshold_bytes=settings.claim_check_threshold_bytes,
                   max_message_bytes=settings.max_message_bytes)

    async def fit(self, tasks: list[TaskEvent]) -> list[TaskEvent]:
        """``tasks`` with large parts checked out; ``payload_too_large`` if one cannot fit."""
        store = _PutOnce(self.store)
        return [await self._fit(store, task) for task in tasks]

    async def _fit(self, store: _PutOnce, task: TaskEvent) -> TaskEvent:
        messages, size = await fit_messages(
            store, task.tenant, task.messages,
            lambda ms: len(encode(task.model_copy(update={"messages": ms}))),
            threshold_bytes=self.threshold, limit_bytes=self.limit)
        task = task.model_copy(update={"messages": messages})
        if size > self.limit:
            raise RoutingError(ErrorCode.PAYLOAD_TOO_LARGE, (
                f"the request does not fit on the bus: {size} bytes after claim check, the "
                f"limit is {self.limit} bytes (max_message_bytes {self.limit + HEADER_ROOM_BYTES}"
                f" less {HEADER_ROOM_BYTES} for headers). Message content parts travel by "
                "claim check; context blocks, tool-call arguments, embedding inputs and "
                "message framing travel inline: shorten those"))
        return task
