"""Streaming calls waiting for their stream events, matched by (tenant, request id).

Knows nothing of Kafka or HTTP. A streaming call :meth:`StreamHub.open`\\ s its
:class:`CallStream` under the request's :func:`~modelbus_schemas.identity.scoped_id`
*before* its request is published, and :meth:`StreamHub.close`\\ s it when its HTTP
stream ends (answered, failed or the caller went away). The stream listener asks
:meth:`StreamHub.wants` with the record's key alone, so events of calls this instance does
not hold cost no signature check and no decoding.

A call's events are delivered in ``seq`` order into a bounded queue: an event whose ``seq``
was seen already is a duplicate and is ignored; a gap in ``seq`` or a full queue stops the
delivery for that call (what was delivered is still a prefix of the answer, and the final
response supplies the rest). The hub holds at most ``max_calls`` calls.
"""

from __future__ import annotations

import asyncio

from modelbus_schemas import StreamEvent


class HubFull(Exception):
    """No room for another streaming call."""


class CallStream:
    """One call's stream events, in ``seq`` order, at most ``capacity`` waiting."""

    def __init__(self, capacity: int) -> None:
        self.queue: asyncio.Queue[StreamEvent] = asyncio.Queue(capacity)
        self.next_seq = 0
        self.stopped = False  # a gap or an overflow: the final response supplies the rest

    def offer(self, event: StreamEvent) -> str:
        """Queue ``event`` if it is the next one; the outcome: ``routed``, ``duplicate``,
        ``gap``, ``overflow`` or ``stopped`` (delivery stopped before)."""
        if event.seq < self.next_seq:
            return "duplicate"
        if self.stopped:
            return "stopped"
        if event.seq > self.next_seq or self.queue.full():
            self.stopped = True
            return "gap" if event.seq > self.next_seq else "overflow"
        self.queue.put_nowait(event)
        self.next_seq += 1
        return "routed"

    async def next(self, answer: asyncio.Future) -> StreamEvent | None:
        """The next event; None once ``answer`` (the call's final response) is done and no
        event is queued."""
        if not self.queue.empty():
            return self.queue.get_nowait()
        if answer.done():
            return None
        getter = asyncio.ensure_future(self.queue.get())
        try:
            await asyncio.wait((getter, answer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return None


class StreamHub:
    def __init__(self, capacity_per_call: int = 256, max_calls: int = 10_000) -> None:
        self.capacity = capacity_per_call
        self.max_calls = max_calls
        self._calls: dict[str, CallStream] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def wants(self, scope: str) -> bool:
        return scope in self._calls

    def open(self, scope: str) -> CallStream:
        if len(self._calls) >= self.max_calls:
            raise HubFull(f"{self.max_calls} streaming calls are already open")
        call = self._calls[scope] = CallStream(self.capacity)
        return call

    def close(self, scope: str) -> None:
        self._calls.pop(scope, None)

    def deliver(self, scope: str, event: StreamEvent) -> str:
        """Hand ``event`` to the call of ``scope``; the outcome (``ignored`` when no call
        of this instance waits for it)."""
        call = self._calls.get(scope)
        return "ignored" if call is None else call.offer(event)
