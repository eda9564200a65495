"""Handles one task end to end, without knowing Kafka: answer a redelivery from the
idempotency store, else run the target, then produce the one output — a result for
``modelbus.results.v1`` or the task forwarded to the next target's topic — and keep it
before it is published. The store is keyed by the task's (tenant, request id, part, step,
hop) position (:func:`~modelbus_adapter_worker.outcome.position_id`).

A task whose request the aggregator already settled (its settled mark, checked before each
attempt) produces nothing: the aggregator ignores results of a settled request, and the
response it chose is stored before the mark is written, so publishing nothing loses no
answer. Nothing is kept either, so a redelivery checks the mark again.

A task with ``stream`` set (a chat) also publishes its output as it arrives, through the
``publish`` callable of the composition root (:mod:`modelbus_adapter_worker.stream_out`);
its result counts the stream events, and the stream's last event is published after the
result is kept. Redelivered, such a task whose stream had started but whose result was
never kept is answered ``stream_interrupted`` without a provider call."""

from __future__ import annotations

import logging

from modelbus_runtime.logging import log_fields
from modelbus_schemas import ResultEvent, TaskEvent, encode
from modelbus_schemas.topics import RESULTS, tasks_topic

from modelbus_adapter_worker.errors import ProviderError
from modelbus_adapter_worker.executor import Executor, TargetRun
from modelbus_adapter_worker.idempotency import Output, OutputStore
from modelbus_adapter_worker.metrics import FALLBACKS, REPLAYED, SETTLED_SKIPS
from modelbus_adapter_worker.outcome import next_task, position_id, result_of, should_forward
from modelbus_adapter_worker.stream_out import Publish, TaskStream

log = logging.getLogger(__name__)


class TaskHandler:
    def __init__(self, executor: Executor, store: OutputStore | None = None, *,
                 stream_flush_ms: float = 50, stream_flush_deltas: int = 16) -> None:
        self.executor = executor
        self.store = store
        self.stream_flush_ms = stream_flush_ms
        self.stream_flush_deltas = stream_flush_deltas

    async def handle(self, task: TaskEvent, publish: Publish | None = None) -> Output | None:
        """The task's one output; ``publish`` sends stream events (a streamed task)."""
        key = position_id(task)
        streams = task.stream and task.operation == "chat" and publish is not None
        if self.store is not None:
            kept = await self.store.get(key)
            if kept is not None:
                REPLAYED.inc()
                log.info("redelivered task answered from the store",
                         extra=log_fields(task_event_id=task.event_id, tenant=task.tenant))
                return kept
            if streams and await self.store.stream_started(key):
                return await self._interrupted(task, key)
        stream = TaskStream(task, publish, store=self.store, flush_ms=self.stream_flush_ms,
                            flush_deltas=self.stream_flush_deltas) if streams else None
        try:
            run = await self.executor.run(task, stream.sink if stream else None)
        except BaseException:
            if stream is not None:
                stream.abandon()
            raise
        if stream is not None:
            await stream.seal()  # no delta leaves after this: the count below is final
        if run.stop == "settled":
            SETTLED_SKIPS.inc()
            log.info("request already settled: no further provider call", extra=log_fields(
                task_event_id=task.event_id, tenant=task.tenant,
                target=f"{task.provider}/{task.model}", attempts=len(run.attempts)))
            return None
        if should_forward(task, run):
            forward = next_task(task, run)
            FALLBACKS.labels(from_provider=task.provider).inc()
            log.info("falling back", extra=log_fields(
                from_target=f"{task.provider}/{task.model}",
                to_target=f"{forward.provider}/{forward.model}", reason=run.stop))
            output = Output(tasks_topic(forward.provider), task.request_id, forward.event_id,
                            TaskEvent.CE_TYPE, encode(forward))
        else:
            result: ResultEvent = result_of(task, run)
            if stream is not None:
                result = result.model_copy(update={"stream_events": stream.total})
            output = Output(RESULTS, task.request_id, result.event_id, ResultEvent.CE_TYPE,
                            encode(result))
        if self.store is not None:
            await self.store.put(key, output)
        if stream is not None and output.topic == RESULTS:
            await stream.close(result)
        return output

    async def _interrupted(self, task: TaskEvent, key: str) -> Output:
        log.warning("redelivered task had begun streaming: answered stream_interrupted",
                    extra=log_fields(task_event_id=task.event_id, tenant=task.tenant))
        result = result_of(task, TargetRun("stream_interrupted", error=ProviderError(
            "the worker stopped while streaming this answer; part of it had already left, "
            "so it is not asked again", retryable=False, code="stream_interrupted")))
        output = Output(RESULTS, task.request_id, result.event_id, ResultEvent.CE_TYPE,
                        encode(result))
        await self.store.put(key, output)
        return output
