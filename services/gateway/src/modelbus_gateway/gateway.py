"""The core of the gateway: one synchronous call → one request event → its one response.

Knows nothing of Kafka or HTTP: it is given a ``publish`` coroutine and is handed the
responses that arrive on this instance's reply topic (:meth:`Gateway.on_response`).

* the call joins the pending table under its (tenant, request id) — the tenant of the API
  key — *before* publishing, so a fast response cannot be missed, and leaves it on answer,
  timeout or error (bounded memory); only a response of that tenant completes it;
* the wait ends at the latency budget plus a small grace: a call never hangs past its
  deadline (504), even when no component answers;
* with an ``Idempotency-Key`` the call takes the key first; a retry of a call in flight
  waits for the same response (on this instance's pending entry and on Redis, where the
  instance that gets the response stores it), a retry after completion gets it from Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from modelbus_schemas import RequestEvent, ResponseEvent
from modelbus_schemas.identity import scoped_id

from modelbus_gateway.correlation import PendingFull, PendingReplies, scope_of
from modelbus_gateway.errors import GatewayError, deadline_exceeded, overloaded
from modelbus_gateway.idempotency import (
    IdempotencyStore,
    IdempotencyUnavailable,
    KeyReused,
    fingerprint,
)

log = logging.getLogger(__name__)

Publish = Callable[[RequestEvent], Awaitable[None]]
LATE_WATCH = 10_000  # idempotent requests whose late response is still worth storing


def call_fingerprint(request: RequestEvent) -> str:
    """What makes two calls the same call (ids, reply topic and timestamps excluded)."""
    return fingerprint(request.model_dump_json(
        include={"task", "messages", "context", "params", "data_class", "region",
                 "session_id", "metadata"}))


class Gateway:
    def __init__(self, publish: Publish, pending: PendingReplies,
                 idempotency: IdempotencyStore | None, *, grace_ms: int = 250,
                 poll_ms: int = 50) -> None:
        self.publish = publish
        self.pending = pending
        self.idempotency = idempotency
        self.grace_s = grace_ms / 1000
        self.poll_s = poll_ms / 1000
        self.closing = False
        self._idempotent: OrderedDict[str, None] = OrderedDict()  # scoped request ids
        self._tasks: set[asyncio.Task] = set()

    # -- responses from the reply topic -------------------------------------------------
    def on_response(self, response: ResponseEvent) -> None:
        if scope_of(response) in self._idempotent and self.idempotency is not None:
            task = asyncio.create_task(self._store(response))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.pending.resolve(response)

    async def _store(self, response: ResponseEvent) -> None:
        try:
            await self.idempotency.store(response)
        except IdempotencyUnavailable as exc:
            log.warning("could not store idempotent response %s: %s", response.request_id, exc)

    # -- calls --------------------------------------------------------------------------
    async def call(self, request: RequestEvent, idempotency_key: str | None = None
                   ) -> ResponseEvent:
        """The response to ``request`` (any status), or a :class:`GatewayError`."""
        if self.closing:
            raise overloaded("the gateway is shutting down")
        budget_ms = request.latency_budget_ms or 30_000
        timeout = budget_ms / 1000 + self.grace_s
        if idempotency_key is None or self.idempotency is None:
            return await self._send_and_wait(request, timeout, budget_ms)
        tenant, call = request.caller.tenant, call_fingerprint(request)
        try:
            claimed = await self.idempotency.claim(tenant, idempotency_key, call,
                                                   request.request_id)
        except KeyReused as exc:
            raise GatewayError(409, str(exc), "invalid_request_error",
                               "idempotency_key_reused", "Idempotency-Key") from None
        except IdempotencyUnavailable:
            raise overloaded("idempotency store unavailable") from None
        if not claimed.new:
            return await self._wait_existing(tenant, claimed.request_id, timeout, budget_ms)
        self._watch(scoped_id(tenant, request.request_id))
        try:
            response = await self._send_and_wait(request, timeout, budget_ms)
        except GatewayError as exc:
            if exc.status != 504:  # nothing was sent (or it was refused): free the key
                await self._release(tenant, idempotency_key, call, request.request_id)
            raise
        if response.status == "error":
            await self._release(tenant, idempotency_key, call, request.request_id)
        return response

    async def _send_and_wait(self, request: RequestEvent, timeout: float, budget_ms: int
                             ) -> ResponseEvent:
        rid = request.request_id
        scope = scoped_id(request.caller.tenant, rid)
        try:
            future = self.pending.join(scope)
        except PendingFull as exc:
            raise overloaded(str(exc)) from None
        try:
            async with asyncio.timeout(timeout):
                try:
                    await self.publish(request)
                except Exception as exc:  # the broker refused or is unreachable
                    if isinstance(exc, (TimeoutError, asyncio.CancelledError, GatewayError)):
                        raise  # a GatewayError: the event was refused before sending
                    log.warning("publish of %s failed: %r", rid, exc)
                    raise overloaded("the event log is unavailable; try again") from None
                return await asyncio.shield(future)
        except TimeoutError:
            raise deadline_exceeded(budget_ms) from None
        finally:
            self.pending.leave(scope)

    async def _wait_existing(self, tenant: str, rid: str, timeout: float, budget_ms: int
                             ) -> ResponseEvent:
        """A retry: the response of the tenant's ``rid``, from this instance's table or
        from Redis."""
        scope = scoped_id(tenant, rid)
        try:
            future = self.pending.join(scope)
        except PendingFull as exc:
            raise overloaded(str(exc)) from None
        self._watch(scope)
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        try:
            while True:
                try:
                    stored = await self.idempotency.stored(tenant, rid)
                except IdempotencyUnavailable:
                    stored = None
                if stored is not None:
                    return stored
                remaining = end - loop.time()
                if remaining <= 0:
                    raise deadline_exceeded(budget_ms)
                try:
                    return await asyncio.wait_for(asyncio.shield(future),
                                                  min(self.poll_s, remaining))
                except TimeoutError:
                    continue
        finally:
            self.pending.leave(scope)

    def _watch(self, scope: str) -> None:
        self._idempotent[scope] = None
        self._idempotent.move_to_end(scope)
        while len(self._idempotent) > LATE_WATCH:
            self._idempotent.popitem(last=False)

    async def _release(self, tenant: str, key: str, call: str, rid: str) -> None:
        try:
            await self.idempotency.release(tenant, key, call, rid)
        except IdempotencyUnavailable as exc:
            log.warning("could not release idempotency key of %s: %s", rid, exc)

    async def drain(self, timeout_s: float) -> None:
        """Refuse new calls and wait (bounded) for the calls in flight to get answers."""
        self.closing = True
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while len(self.pending) and loop.time() < end:
            await asyncio.sleep(0.05)
        for task in list(self._tasks):
            await task
