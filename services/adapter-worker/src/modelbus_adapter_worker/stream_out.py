"""A streamed task's output as stream events (``modelbus.stream.v1``): the provider's
deltas coalesced, numbered and handed to the worker's publisher.

Coalescing (:class:`Coalescer`): the first delta leaves at once (it is the time to first
token the caller feels); after that the deltas that arrive are gathered into one event
per ``stream_flush_ms`` or per ``stream_flush_deltas`` deltas, whichever comes first. A
provider sends a delta per token or word, i.e. tens to hundreds per second per stream;
one broker event each would multiply the events on the bus (and the gateway's and
consumers' work) by that much for no visible gain, while 50 ms is below what a reader
perceives as a pause. The delta bound keeps events small when a provider bursts.

Identity and order: events are keyed by the request's scoped id (one ordered stream per
request on one partition), numbered ``seq`` 0, 1, ... and identified by
``StreamEvent.make_id(scope, seq)``, so an event published twice is recognised as one.
The last event is ``end`` (finish reason and usage, plus whatever text is still owed so
that the deltas add up to the result's text) or ``error`` (the result's error). Text is
held to the request's stop sequences as it goes
(:class:`~modelbus_adapter_worker.answer.StopHoldBack`), so nothing the final answer cuts
ever streams.

Before the first event of a task leaves, its "stream started" mark is set in the
idempotency store (keyed by the task's position id): a task redelivered after a crash
mid-stream then answers ``stream_interrupted`` instead of starting a second stream.

Publishing is a callable handed in by the composition root (it owns the producer and the
signing); this module knows nothing of Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from modelbus_runtime.logging import log_fields
from modelbus_schemas import ResultEvent, TaskEvent, encode
from modelbus_schemas.stream import StreamEvent
from modelbus_schemas.topics import STREAM

from modelbus_adapter_worker.adapters import StreamDelta
from modelbus_adapter_worker.answer import StopHoldBack
from modelbus_adapter_worker.idempotency import Output, OutputStore
from modelbus_adapter_worker.metrics import STREAM_EVENTS, STREAM_TTFT
from modelbus_adapter_worker.outcome import position_id, scope_of

log = logging.getLogger(__name__)

Publish = Callable[[Output], Awaitable[None]]


class Coalescer:
    """When buffered deltas are due to leave (no I/O; the clock is injectable)."""

    def __init__(self, flush_ms: float = 50, flush_deltas: int = 16,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.flush_s = flush_ms / 1000
        self.flush_deltas = max(1, flush_deltas)
        self.clock = clock
        self.pending = StreamDelta()
        self.count = 0  # deltas in ``pending``
        self.last_flush: float | None = None

    def add(self, delta: StreamDelta) -> bool:
        """Buffer ``delta``; True when the buffer is due to leave now."""
        self.pending.add(delta)
        self.count += 1
        return self.wait_s() == 0

    def wait_s(self) -> float | None:
        """Seconds until the buffered deltas are due (0: now); None when nothing waits."""
        if not self.count:
            return None
        if self.last_flush is None or self.count >= self.flush_deltas:
            return 0
        return max(0.0, self.last_flush + self.flush_s - self.clock())

    def take(self) -> StreamDelta:
        """The buffered deltas as one (they count as flushed now)."""
        delta, self.pending, self.count = self.pending, StreamDelta(), 0
        self.last_flush = self.clock()
        return delta


class TaskStream:
    """The stream events of one task: :meth:`sink` is the executor's delta sink,
    :meth:`close` publishes the last event once the result is known."""

    def __init__(self, task: TaskEvent, publish: Publish, *, store: OutputStore | None = None,
                 flush_ms: float = 50, flush_deltas: int = 16) -> None:
        self.task = task
        self.publish = publish
        self.store = store
        self.scope = scope_of(task)
        self.coalescer = Coalescer(flush_ms, flush_deltas)
        self.seq = 0  # events published so far
        self.streamed = ""  # text published so far
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task | None = None
        self._failed: BaseException | None = None
        self._sending: asyncio.Future | None = None  # the last publish
        self._started = time.perf_counter()
        self._stops = StopHoldBack(task.params.stop)

    async def sink(self, delta: StreamDelta) -> None:
        self._raise_failure()
        delta = StreamDelta(self._stops.feed(delta.text), delta.tool_calls)
        if not delta:
            return
        async with self._lock:
            if self.coalescer.add(delta):
                await self._flush()
            elif self._timer is None:
                self._timer = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            while True:
                wait = self.coalescer.wait_s()
                if wait is None:
                    return
                await asyncio.sleep(wait)
                async with self._lock:
                    if self.coalescer.wait_s() == 0:
                        await self._flush()
        except Exception as exc:  # noqa: BLE001 - surfaced by the next sink() or close()
            self._failed = exc
        finally:
            self._timer = None

    def _raise_failure(self) -> None:
        if self._failed is not None:
            raise self._failed

    async def _flush(self) -> None:
        delta = self.coalescer.take()
        await self._emit("delta", delta.text, delta)

    async def _emit(self, kind: str, text: str, delta: StreamDelta | None = None,
                    **fields) -> None:
        task = self.task
        if self.seq == 0 and kind != "error":
            if kind == "delta" and self.store is not None:
                await self.store.mark_stream_started(position_id(task))
            STREAM_TTFT.labels(task.provider, task.decision.route or "").observe(
                time.perf_counter() - self._started)
        event = StreamEvent(
            event_id=StreamEvent.make_id(self.scope, self.seq), request_id=task.request_id,
            tenant=task.tenant, task=task.task, part_id=task.part_id, step=task.plan.step,
            seq=self.seq, kind=kind, provider=task.provider, model=task.model, text=text,
            tool_calls=delta.tool_calls if delta else [], created_at=datetime.now(UTC),
            **fields)
        # The number is taken before the publish, and the publish is shielded: a reader
        # cancelled meanwhile (the attempt's timeout) neither cuts this event short nor
        # makes the next one reuse its id.
        self.seq += 1
        self.streamed += text
        self._sending = asyncio.ensure_future(self.publish(Output(
            STREAM, self.scope, event.event_id, StreamEvent.CE_TYPE, encode(event))))
        await asyncio.shield(self._sending)

    @property
    def total(self) -> int:
        """Events of the whole stream, the last one included (known before :meth:`close`)."""
        return self.seq + 1

    async def close(self, result: ResultEvent) -> int:
        """Publish the last event, from the task's result; returns the events published."""
        async with self._lock:  # the timer is not publishing now: stopping it is safe
            if self._timer is not None:
                self._timer.cancel()
            if self._sending is not None:
                await self._sending  # a publish a cancelled reader left running
            self._raise_failure()
            delta = self.coalescer.take()
            text = delta.text
            if result.status == "ok":
                await self._emit("end", text + self._owed(result, text), delta,
                                 finish_reason=result.finish_reason, usage=result.usage)
            else:
                await self._emit("error", text, delta, error=result.error)
        STREAM_EVENTS.labels(self.task.provider).observe(self.seq)
        return self.seq

    def _owed(self, result: ResultEvent, pending: str) -> str:
        """Text of the result not streamed yet (e.g. the JSON answer of Anthropic's forced
        tool, which is only known whole)."""
        sent, final = self.streamed + pending, result.text or ""
        if final.startswith(sent):
            return final[len(sent):]
        log.warning("streamed text is not a prefix of the result's text; the final "
                    "response holds the answer", extra=log_fields(
                        request_id=result.request_id, tenant=result.tenant))
        return ""
