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
    :meth:`seal` stops publishing deltas (the count is then final but for the last event),
    :meth:`close` publishes the last event once the result is known.

    The provider's reader never waits for the broker: :meth:`sink` only buffers, and one
    pump task per stream publishes in order, one event at a time. Deltas that arrive while a
    publish is in flight join the next event, so a slow broker gets fewer, larger events
    rather than one per token.
    """

    def __init__(self, task: TaskEvent, publish: Publish, *, store: OutputStore | None = None,
                 flush_ms: float = 50, flush_deltas: int = 16) -> None:
        self.task = task
        self.publish = publish
        self.store = store
        self.scope = scope_of(task)
        self.coalescer = Coalescer(flush_ms, flush_deltas)
        self.seq = 0  # events published (or being published) so far
        self.streamed = ""  # text of those events
        self._wake = asyncio.Event()
        self._pump: asyncio.Task | None = None
        self._sealed = False
        self._failed: BaseException | None = None
        self._started = time.perf_counter()
        self._stops = StopHoldBack(task.params.stop)

    async def sink(self, delta: StreamDelta) -> None:
        self._raise_failure()
        if self._sealed:
            return
        delta = StreamDelta(self._stops.feed(delta.text), delta.tool_calls)
        if not delta:
            return
        self.coalescer.add(delta)
        if self._pump is None:
            self._pump = asyncio.create_task(self._run_pump(), name=f"stream:{self.scope}")
        self._wake.set()

    async def _run_pump(self) -> None:
        try:
            while not self._sealed:
                wait = self.coalescer.wait_s()
                if wait == 0:
                    await self._flush()
                    continue
                self._wake.clear()
                try:
                    async with asyncio.timeout(wait):  # None: until a delta or the seal
                        await self._wake.wait()
                except TimeoutError:
                    pass
        except Exception as exc:  # noqa: BLE001 - surfaced by the next sink(), seal()
            self._failed = exc

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
        self.seq += 1
        self.streamed += text
        await self.publish(Output(STREAM, self.scope, event.event_id, StreamEvent.CE_TYPE,
                                  encode(event)))

    async def seal(self) -> int:
        """Stop publishing deltas (the one in flight completes; what is still buffered
        goes into the last event); returns the events of the whole stream, the last one
        included. Idempotent."""
        self._sealed = True
        self._wake.set()
        if self._pump is not None:
            await self._pump
        self._raise_failure()
        return self.seq + 1

    def abandon(self) -> None:
        """The task failed outright (no result to close with): stop the pump, publish no
        more. What left stays out; a redelivery finds the stream-started mark."""
        self._sealed = True
        if self._pump is not None:
            self._pump.cancel()

    @property
    def total(self) -> int:
        """Events of the whole stream, the last one included (final once sealed)."""
        return self.seq + 1

    async def close(self, result: ResultEvent) -> int:
        """Publish the last event, from the task's result; returns the events published."""
        await self.seal()
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
