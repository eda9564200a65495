"""A Kafka consumer loop with many messages in flight and at-least-once commits.

Why not FastStream's subscriber: its concurrent mode with manual commits runs one worker per
partition, which cannot keep hundreds of slow provider calls in flight per process, and its
decoding hides the raw bytes a dead-letter record must keep. This loop is small instead:

* records are fetched in batches and each is handled in its own task, bounded by
  ``max_in_flight``; records with the same key (request id) run one after another, so the
  events of one request are never handled out of order. ``order_by`` picks another
  ordering key: a worker orders by event id, so the parts of an ensemble run at once while
  a duplicate of a task in flight waits for it (and then finds its kept result);
* an offset is committed only when it and every offset before it on its partition are done
  (:mod:`modelbus_runtime.offsets`), i.e. after the handler's output was acknowledged;
* :class:`PoisonMessage` and unexpected errors go to the DLQ with the original bytes;
  :class:`TransientInfraError` is retried in place with backoff and never skipped;
* on revocation, in-flight work of the revoked partitions gets ``revoke_drain_timeout_s``
  to finish and is committed; what outlives that bound is cancelled and left uncommitted
  (the next owner runs it again, never alongside a copy still running here), and records
  of those partitions fetched but not started are dropped (refetched from the commit);
* ``stop()`` stops fetching, drains in-flight work, cancels what is unfinished, commits and
  leaves the group, all within ``drain_timeout_s``: the last part of that bound is kept
  for the commit and the leave, and a revocation during a stop drains only until the stop's
  own drain bound (:mod:`modelbus_runtime.inflight`).

aiokafka (0.14) has no cooperative (incremental) rebalancing: every rebalance revokes every
partition of every member, which is why the revoke drain is short.

Internal events are authenticated before the handler sees them: on a topic only modelbus
services write (:func:`modelbus_schemas.topics.writer_roles`), a record without a valid
signature from an allowed role goes to the DLQ with reason ``unauthenticated`` and changes
no state (:mod:`modelbus_runtime.authn`).

Fetches are paced and their waits adapt to idleness (:mod:`modelbus_runtime.fetchwait`).

Batch mode (``batch_handler``) hands everything one fetch returned, across all its
partitions, to one call, for sinks that write in bulk (audit); it is committed after the
call returns.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from modelbus_schemas import DlqReason
from opentelemetry.trace import SpanKind, Status, StatusCode

from modelbus_runtime.authn import authenticate
from modelbus_runtime.dlq import DeadLetterPublisher
from modelbus_runtime.errors import PoisonMessage, TransientInfraError
from modelbus_runtime.fetchwait import FetchPacer
from modelbus_runtime.inbound import Inbound
from modelbus_runtime.inflight import (
    CANCEL_GRACE_S,
    InFlight,
    finish_by,
    finish_or_cancel,
    wait_previous,
)
from modelbus_runtime.kafka import build_consumer
from modelbus_runtime.lag import LagReporter
from modelbus_runtime.logging import request_id_var
from modelbus_runtime.metrics import (
    HANDLER_SECONDS,
    IN_FLIGHT,
    INFRA_RETRIES,
    MESSAGES_HANDLED,
    forget_partitions,
)
from modelbus_runtime.offsets import OffsetTracker
from modelbus_runtime.settings import RuntimeSettings
from modelbus_runtime.tracing import extract, recording, span_or_carry

log = logging.getLogger(__name__)

Handler = Callable[[Inbound], Awaitable[None]]
BatchHandler = Callable[[list[Inbound]], Awaitable[None]]

#: the end of a stop's bound kept for the cancelled tasks to unwind, the last commit and
#: leaving the group (at most a quarter of the bound)
CLOSE_RESERVE_S = 2.0


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: EventConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked):
        await self.owner._finish_partitions(set(revoked))

    async def on_partitions_assigned(self, assigned):
        self.owner.assigned = set(assigned)
        self.owner.joined = True


class EventConsumer:
    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        group_id: str,
        dlq: DeadLetterPublisher,
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        topics: list[str] | None = None,
        pattern: str | None = None,
        max_in_flight: int | None = None,
        order_by: Callable[[Inbound], bytes | None] | None = None,
        fetch_max_wait_ms: int | None = None,
        idle_fetch_max_wait_ms: int | None = None,
        min_fetch_interval_ms: int = 0,
        authenticate: bool = True,
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise ValueError("give exactly one of handler or batch_handler")
        self.settings = settings
        self.group_id = group_id
        self.dlq = dlq
        self.handler = handler
        self.batch_handler = batch_handler
        self.topics = topics or []
        self.pattern = pattern
        self.max_in_flight = max_in_flight or settings.max_in_flight
        self.order_by = order_by or (lambda message: message.key)
        self.assigned: set[TopicPartition] = set()
        self.joined = False  # a group generation assigned this member (maybe no partition)
        self._consumer = build_consumer(settings, group_id=group_id, topics=topics,
                                        pattern=pattern, fetch_max_wait_ms=fetch_max_wait_ms)
        self._tracker = OffsetTracker()
        self._slots = asyncio.Semaphore(self.max_in_flight)
        self._work = InFlight()
        # a revocation in progress takes these partitions; each finished one bumps the epoch,
        # and work fetched or started in an earlier epoch neither starts nor finishes offsets
        self._revoking: set[TopicPartition] = set()
        self._epoch = 0
        self._work_deadline: float | None = None  # set by stop(): when handlers are cancelled
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        self._last_commit = 0.0
        self._pacer = FetchPacer.from_settings(
            self._consumer, settings, busy_wait_ms=fetch_max_wait_ms,
            idle_wait_ms=idle_fetch_max_wait_ms, min_interval_ms=min_fetch_interval_ms)
        self._lag = LagReporter(self._consumer, group_id)
        self._gauge = IN_FLIGHT.labels(group=group_id)
        self._ring = settings.signing_ring() if authenticate else None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        listener = _Rebalance(self)
        if self.pattern:
            self._consumer.subscribe(pattern=self.pattern, listener=listener)
        else:
            self._consumer.subscribe(self.topics, listener=listener)
        await self._consumer.start()
        self._loop_task = asyncio.create_task(self._run(), name=f"consume:{self.group_id}")

    @property
    def ready(self) -> bool:
        """Fetching, and a member of its group: one left without a partition (more members
        than partitions) stands by and is ready too."""
        return self._loop_task is not None and not self._loop_task.done() and self.joined

    async def stop(self) -> None:
        """Stop fetching, finish in-flight work, commit, leave the group: within the drain
        bound in total.

        The fetch loop (which may be waiting for a free slot or on a batch) and the handlers
        get the bound less a reserve; work unfinished then is cancelled and its offsets stay
        uncommitted, so the next owner of the partition handles it again. The reserve covers
        the last commit and the leave; a leave stuck behind a rebalance is given up on.
        """
        bound = self.settings.drain_timeout_s
        deadline = time.monotonic() + bound
        self._work_deadline = deadline - min(CLOSE_RESERVE_S, bound / 4)
        self._stopping.set()
        if self._loop_task:
            if self._pacer.idle:  # it only waits for records: not worth waiting for
                self._loop_task.cancel()
            await finish_or_cancel({self._loop_task}, self._work_deadline, "the fetch loop")
        await finish_or_cancel(self._work.of(), self._work_deadline, "messages in flight")
        await finish_by(self._commit(force=True), deadline, "the last commit")
        await finish_by(self._consumer.stop(), deadline, "leaving the group")

    async def discard(self) -> None:
        """Close a consumer that was never started (a start-up given up or stopped)."""
        await self._consumer.stop()

    # -- main loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping.is_set():
            poll_ms = await self._pacer.before_fetch()
            try:
                batches = await self._consumer.getmany(
                    timeout_ms=poll_ms, max_records=self.settings.max_poll_records
                )
            except KafkaError as exc:
                log.warning("fetch failed: %r", exc)
                await asyncio.sleep(0.5)
                continue
            self._pacer.after_fetch(bool(batches), len(self._work))
            epoch = self._epoch
            if self.batch_handler is not None and batches and not self._stopping.is_set():
                batch = asyncio.create_task(self._handle_batch(
                    {tp: [Inbound.from_record(r) for r in records]
                     for tp, records in batches.items()}, epoch))
                self._work.add(batch, set(batches))
                await asyncio.wait({batch})  # a revocation may cancel it, not the loop
                batches = {}
            for tp, records in batches.items():
                if self._stopping.is_set():
                    break  # fetched, not started: left uncommitted for the next owner
                for record in records:
                    if self._stopping.is_set():
                        break
                    await self._spawn(tp, Inbound.from_record(record), epoch)
            await self._commit()
            self._lag.report(self.assigned)

    async def _spawn(self, tp: TopicPartition, message: Inbound, epoch: int) -> None:
        await self._slots.acquire()
        if self._stopping.is_set() or epoch != self._epoch or tp in self._revoking:
            # stopped, or its partition revoked, while waiting for a slot: not started, and
            # refetched from the committed offset by whoever owns the partition next
            self._slots.release()
            return
        self._tracker.start(tp, message.offset)
        self._gauge.inc()
        key = self.order_by(message)
        task = asyncio.create_task(
            self._handle_one(tp, message, self._work.previous(key), epoch))
        self._work.add(task, {tp}, key)

    async def _handle_one(self, tp: TopicPartition, message: Inbound,
                          previous: asyncio.Task | None, epoch: int) -> None:
        handled = False
        try:
            await wait_previous(previous)
            await self._with_infra_retries(message.topic, self._invoke, message)
            handled = True
        except TransientInfraError:
            pass  # shutting down mid-outage: left uncommitted, redelivered to the next owner
        finally:
            if handled and epoch == self._epoch:  # not revoked meanwhile
                self._tracker.finish(tp, message.offset)
            self._slots.release()
            self._gauge.dec()

    def _span(self, message: Inbound):
        return span_or_carry(
            f"{message.topic} process",
            extract(message.header_map, message.request_id),
            kind=SpanKind.CONSUMER,
            attributes=lambda: {
                "messaging.system": "kafka",
                "messaging.operation": "process",
                "messaging.destination.name": message.topic,
                "messaging.kafka.message.key": message.request_id or "",
                "messaging.kafka.destination.partition": message.partition,
                "messaging.kafka.message.offset": message.offset,
                "messaging.consumer.group.name": self.group_id,
                "modelbus.service": self.dlq.service,
                "modelbus.request_id": message.request_id or "",
            },
        )

    async def _invoke(self, message: Inbound) -> None:
        with self._span(message) as span:
            await self._invoke_in_span(message, span)

    async def _invoke_in_span(self, message: Inbound, span) -> None:
        token = request_id_var.set(message.request_id)
        started = time.perf_counter()
        outcome = "ok"
        try:
            if message.value is not None and len(message.value) > self.settings.max_message_bytes:
                raise PoisonMessage(
                    f"message of {len(message.value)} bytes exceeds the limit of "
                    f"{self.settings.max_message_bytes}",
                    DlqReason.OVERSIZED,
                )
            if self._ring is not None:
                authenticate(self._ring, message)
            await self.handler(message)
        except TransientInfraError:
            outcome = "retry"
            raise
        except PoisonMessage as exc:
            outcome = "dead_letter"
            span.set_status(Status(StatusCode.ERROR, exc.dlq_reason.value))
            span.set_attribute("error.type", type(exc).__name__)
            await self.dlq.send(message, exc, exc.dlq_reason)
        except Exception as exc:  # a bug must not stall the partition
            outcome = "dead_letter"
            span.set_status(Status(StatusCode.ERROR, "unhandled"))
            span.set_attribute("error.type", type(exc).__name__)
            log.exception("handler failed")
            await self.dlq.send(message, exc, DlqReason.UNHANDLED)
        finally:
            request_id_var.reset(token)
            MESSAGES_HANDLED.labels(topic=message.topic, outcome=outcome).inc()
            HANDLER_SECONDS.labels(topic=message.topic).observe(time.perf_counter() - started)

    async def _handle_batch(self, fetched: dict[TopicPartition, list[Inbound]],
                            epoch: int) -> None:
        """Everything one fetch returned, across partitions, in one handler call (one store
        transaction for audit, however many partitions the pattern covers)."""
        spans = recording()
        messages: list[Inbound] = []
        for tp, part in fetched.items():
            for message in part:
                self._tracker.start(tp, message.offset)
                if spans:
                    with self._span(message):
                        pass  # batch sinks record one span per message, linked to its trace
            messages.extend(part)
        try:
            await self._with_infra_retries(self.pattern or ",".join(self.topics),
                                           self.batch_handler, messages)
        except TransientInfraError:
            return  # shutting down mid-outage: left uncommitted
        if epoch != self._epoch:
            return  # its partitions were revoked meanwhile: the next owner has them
        for tp, part in fetched.items():
            for message in part:
                self._tracker.finish(tp, message.offset)
            MESSAGES_HANDLED.labels(topic=tp.topic, outcome="ok").inc(len(part))

    async def _with_infra_retries(self, topic: str, call, arg) -> None:
        """Retry while a dependency is down; the offset is not committed meanwhile."""
        delay = 0.1
        first_failure = None
        while True:
            try:
                await call(arg)
                return
            except TransientInfraError as exc:
                first_failure = first_failure or datetime.now(UTC)
                INFRA_RETRIES.labels(topic=topic).inc()
                log.warning("dependency unavailable, retrying in place: %s", exc)
                if self._stopping.is_set() and delay >= 1.0:
                    raise  # shutting down: leave it uncommitted for the next owner
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)

    # -- commits and rebalancing ---------------------------------------------------------

    async def _commit(self, force: bool = False, only: set | None = None) -> None:
        now = time.monotonic()
        if not force and (now - self._last_commit) * 1000 < self.settings.commit_interval_ms:
            return
        self._last_commit = now
        offsets = self._tracker.take_commits(only)
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            log.warning("commit failed (%r); the records will be redelivered", exc)

    async def _finish_partitions(self, revoked: set) -> None:
        """Revocation: the revoked partitions' work gets ``revoke_drain_timeout_s`` (during a
        stop, at most until the stop's own drain bound), then is cancelled; what finished is
        committed. The members that stay wait for this before the group moves on."""
        self._revoking = set(revoked)
        try:
            deadline = time.monotonic() + self.settings.revoke_drain_timeout_s
            if self._work_deadline is not None:
                deadline = min(deadline, self._work_deadline)
            grace = min(CANCEL_GRACE_S, self.settings.revoke_drain_timeout_s)
            await finish_or_cancel(self._work.of(revoked), deadline,
                                   "work on revoked partitions", grace)
            await self._commit(force=True, only=revoked)
            self._tracker.forget(revoked)
            self.assigned -= revoked
            forget_partitions(self.group_id, revoked)
        finally:
            self._epoch += 1
            self._revoking = set()
