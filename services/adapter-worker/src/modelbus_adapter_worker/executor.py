"""Runs one task against its target: the resilience that wraps an adapter.

For each attempt, in order: the request's deadline (no attempt starts past it, none runs
beyond it), the request's settled mark (once the aggregator fixed the answer — quorum,
deadline, cascade satisfied — no further attempt is made: the run stops ``settled``), the
request-wide attempt budget (retries never multiply across fallbacks), the
shared circuit breaker of the target, the provider's shared rate limit, then one HTTP call
with its own timeout (a request that met a stale pooled connection is resent once inside
that call by :mod:`modelbus_adapter_worker.transport`; only the resent request's outcome
reaches this loop, so the stale failure costs no attempt and is never recorded against the
breaker). Failures are classified by the :class:`RetryPolicy`: terminal ones
stop at once, retryable ones are retried with backoff or after ``Retry-After``. A status in
the task's ``fallback_on`` stops retrying here when a fallback target exists.

Before the first attempt, claim-check references in the messages are resolved within the
task's tenant (a missing or tampered blob is a terminal ``blob_missing`` /
``blob_tampered`` error; the resolved parts only go to the provider, never back on the bus).
An embedding task (``operation: embed``) first takes what the embedding cache has; only the
missing inputs are requested, in the provider's batches (one attempt sends every batch),
and the new vectors are cached.

A task with ``stream`` set (a chat) is called streamed even when the worker's ``stream``
setting is off, and each delta read goes to the ``sink`` the caller passed (see
:mod:`modelbus_adapter_worker.stream_out`). Retry — and fallback, decided by the caller —
are possible only until the first delta went to the sink: a failure after that stops the
run ``stream_interrupted`` at once (the caller has already seen part of an answer).

The outcome is a :class:`TargetRun` (the completion or the last error, this target's
attempts, and why it stopped); :mod:`modelbus_adapter_worker.outcome` turns it into a result
or a fallback task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from modelbus_runtime.claimcheck import (
    BlobTampered,
    ClaimCheckError,
    has_blobs,
    resolve_messages,
)
from modelbus_runtime.logging import log_fields
from modelbus_schemas import AttemptRecord, RetrySpec, TaskEvent
from modelbus_schemas.identity import scoped_id

from modelbus_adapter_worker.adapters import Adapter, Completion, HttpRequest
from modelbus_adapter_worker.embed import combine, lookup
from modelbus_adapter_worker.errors import ProviderError
from modelbus_adapter_worker.metrics import CALLS_IN_FLIGHT, PROVIDER_CALLS
from modelbus_adapter_worker.prompt import estimated_input_tokens
from modelbus_adapter_worker.retry import RetryPolicy
from modelbus_adapter_worker.telemetry import (
    CIRCUIT_OPEN,
    RATE_LIMIT_WAIT,
    attempt_span,
    record_attempt,
)
from modelbus_adapter_worker.transport import DeltaSink, HttpTransport

log = logging.getLogger(__name__)

Stop = Literal["ok", "terminal", "retries_exhausted", "circuit_open", "deadline", "budget",
               "fallback_status", "settled", "stream_interrupted"]


@dataclass
class TargetRun:
    stop: Stop
    completion: Completion | None = None
    error: ProviderError | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    latency_ms: float = 0.0


class Executor:
    def __init__(
        self, adapter: Adapter, transport: HttpTransport, *,
        default_retry: RetrySpec | None = None, stream: bool = False,
        breakers=None, limiter=None, stats=None, settled=None,
        embedder=None, embed_cache=None, blobs=None,
    ) -> None:
        self.adapter = adapter
        self.transport = transport
        self.default_retry = default_retry or RetrySpec()
        self.stream = stream
        self.breakers = breakers  # modelbus_runtime.circuit.CircuitBreakers | None
        self.limiter = limiter  # modelbus_runtime.ratelimit.RateLimiter | None
        self.stats = stats  # ModelStats-like: observe(provider, model, latency_ms, tokens)
        self.settled = settled  # modelbus_runtime.settled.SettledMarks | None
        self.embedder = embedder  # adapters.embeddings.*Embedder | None (no embeddings API)
        self.embed_cache = embed_cache  # embed_cache.EmbeddingCache | None
        self.blobs = blobs  # modelbus_runtime.claimcheck.BlobStore | None

    async def run(self, task: TaskEvent, sink: DeltaSink | None = None) -> TargetRun:
        """Run the task; ``sink`` receives the output of a streamed chat as it arrives."""
        started = time.perf_counter()
        run = await (self._embed(task) if task.operation == "embed"
                     else self._attempts(task, _Delivered(sink) if sink else None))
        run.latency_ms = (time.perf_counter() - started) * 1000
        return run

    async def _embed(self, task: TaskEvent) -> TargetRun:
        if self.embedder is None:
            return TargetRun("terminal", error=ProviderError(
                f"{task.provider} has no embeddings API", retryable=False,
                code="unsupported_operation"))
        found = await lookup(self.embed_cache, task)
        if not found.missing:
            return TargetRun("ok", completion=found.merged(None))
        run = await self._attempts(task.model_copy(update={"input": found.missing}))
        if run.stop == "ok" and run.completion is not None:
            if self.embed_cache is not None:
                await self.embed_cache.put_many(found.fresh_items(run.completion))
            run.completion = found.merged(run.completion)
        return run

    async def _request(self, task: TaskEvent) -> HttpRequest | list[HttpRequest]:
        """What one attempt sends: the chat request (claim checks resolved), or the
        embedding batches."""
        if task.operation == "embed":
            return self.embedder.build(task, list(task.input or ()))
        if has_blobs(task.messages):
            if self.blobs is None:
                raise ClaimCheckError("claim-check references but no blob store configured")
            messages = await resolve_messages(self.blobs, task.tenant, task.messages)
            task = task.model_copy(update={"messages": messages})
        return self.adapter.build(task, stream=self.stream or task.stream)

    async def _send(self, request: HttpRequest | list[HttpRequest], timeout: float,
                    sink: DeltaSink | None = None) -> Completion:
        if not isinstance(request, list):
            return await self.transport.call(self.adapter, request, timeout, sink)
        answers = await asyncio.gather(
            *(self.transport.call(self.embedder, r, timeout) for r in request),
            return_exceptions=True)
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        return combine(answers)

    async def _attempts(self, task: TaskEvent, sink: _Delivered | None = None) -> TargetRun:
        policy = RetryPolicy.from_spec(task.retry or self.default_retry)
        limit = policy.max_attempts
        if task.attempt_budget is not None:
            limit = min(limit, task.attempt_budget)
        if limit <= 0:
            return TargetRun("budget", error=ProviderError(
                "the request's attempt budget is spent", retryable=False, code="attempt_budget"))
        try:
            request = await self._request(task)
        except ClaimCheckError as exc:
            code = "blob_tampered" if isinstance(exc, BlobTampered) else "blob_missing"
            return TargetRun("terminal", error=ProviderError(
                f"{code}: {exc}", retryable=False, code=code))
        except (ValueError, KeyError) as exc:
            return TargetRun("terminal", error=ProviderError(
                f"cannot build the request: {exc}", retryable=False, code="invalid_request"))
        attempts: list[AttemptRecord] = []
        first_number = len(task.attempt_history) + 1
        estimate = estimated_input_tokens(task) + (task.params.max_tokens or 0)
        error: ProviderError | None = None
        for index in range(limit):
            remaining = _remaining_s(task)
            if remaining is not None and remaining <= 0:
                return TargetRun("deadline", error=_deadline(error), attempts=attempts)
            if self.settled is not None and await self.settled.is_settled(
                    scoped_id(task.tenant, task.request_id)):
                return TargetRun("settled", error=error, attempts=attempts)
            if self.breakers is not None and not await self.breakers.allow(
                    task.provider, task.model):
                CIRCUIT_OPEN.labels(task.provider, task.model).set(1)
                return TargetRun("circuit_open", attempts=attempts, error=ProviderError(
                    f"circuit open for {task.provider}/{task.model}", retryable=True,
                    code="circuit_open"))
            if self.breakers is not None:
                CIRCUIT_OPEN.labels(task.provider, task.model).set(0)
            waited = time.perf_counter()
            if self.limiter is not None and not await self.limiter.acquire(
                    estimate, timeout_s=remaining):
                return TargetRun("deadline", attempts=attempts, error=ProviderError(
                    "rate limit would delay the call past the deadline", retryable=True,
                    code="deadline_exceeded"))
            if self.limiter is not None:
                RATE_LIMIT_WAIT.labels(task.provider).observe(time.perf_counter() - waited)
            timeout = policy.attempt_timeout_s if remaining is None else min(
                policy.attempt_timeout_s, remaining)
            completion, error, attempt = await self._call(
                task, request, timeout, first_number + index, sink)
            attempts.append(attempt)
            if error is None:
                await self._after_success(task, completion, attempt, estimate)
                return TargetRun("ok", completion=completion, attempts=attempts)
            if self.breakers is not None:
                await self.breakers.record(task.provider, task.model,
                                           ok=not error.signals_unhealthy)
            if sink is not None and sink.count:
                return TargetRun("stream_interrupted", error=_interrupted(error, sink.count),
                                 attempts=attempts)
            if not policy.should_retry(error):
                return TargetRun("terminal", error=error, attempts=attempts)
            if task.fallbacks and task.fallback_on and error.status_code in task.fallback_on:
                return TargetRun("fallback_status", error=error, attempts=attempts)
            if index == limit - 1:
                break
            delay = policy.backoff(index + 1, error.retry_after_s)
            remaining = _remaining_s(task)
            if delay is None or (remaining is not None and delay >= remaining):
                break  # the wait the provider asks for does not fit: exhausted here
            await asyncio.sleep(delay)
        remaining = _remaining_s(task)
        if remaining is not None and remaining <= 0:
            # the last attempt ran into the deadline: no fallback can use what is left
            return TargetRun("deadline", error=_deadline(error), attempts=attempts)
        return TargetRun("retries_exhausted", error=error, attempts=attempts)

    async def _call(self, task: TaskEvent, request, timeout: float, number: int,
                    sink: DeltaSink | None = None):
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        completion, error = None, None
        CALLS_IN_FLIGHT.inc()
        with attempt_span(task, number) as span:
            try:
                completion = await self._send(request, timeout, sink)
            except ProviderError as exc:
                error = exc
            finally:
                CALLS_IN_FLIGHT.dec()
            latency_ms = (time.perf_counter() - t0) * 1000
            record_attempt(span, task, number, latency_ms, completion, error)
        if error is not None:
            log.warning("provider call failed", extra=log_fields(
                target=f"{task.provider}/{task.model}", attempt=number, code=error.code,
                status=error.status_code, error=str(error)))
        PROVIDER_CALLS.labels(provider=task.provider, model=task.model,
                              outcome="ok" if error is None else error.code).inc()
        attempt = AttemptRecord(
            number=number, provider=task.provider, model=task.model, started_at=started_at,
            latency_ms=latency_ms, status_code=error.status_code if error else 200,
            outcome="error" if error else "ok", error_code=error.code if error else None,
        )
        return completion, error, attempt

    async def _after_success(self, task, completion: Completion, attempt, estimate) -> None:
        """The breaker's success, the rate limit's settlement and the latency sample, side by
        side: on the shared coalescing Redis client they leave as one round trip."""
        updates = []
        if self.breakers is not None:
            updates.append(self.breakers.record(task.provider, task.model, ok=True))
        if self.limiter is not None:
            actual = completion.input_tokens + completion.output_tokens
            updates.append(self.limiter.settle(actual - estimate))
        if self.stats is not None:
            updates.append(self.stats.observe(task.provider, task.model, attempt.latency_ms,
                                              completion.output_tokens))
        await asyncio.gather(*updates)


class _Delivered:
    """The caller's sink, counting the deltas handed to it."""

    def __init__(self, sink: DeltaSink) -> None:
        self.sink = sink
        self.count = 0

    async def __call__(self, delta) -> None:
        self.count += 1
        await self.sink(delta)


def _interrupted(error: ProviderError, deltas: int) -> ProviderError:
    return ProviderError(
        f"the provider's stream broke after {deltas} delta(s) had been forwarded: {error}",
        retryable=False, code="stream_interrupted", status_code=error.status_code)


def _remaining_s(task: TaskEvent) -> float | None:
    if task.deadline_at is None:
        return None
    return (task.deadline_at - datetime.now(UTC)).total_seconds()


def _deadline(last: ProviderError | None) -> ProviderError:
    suffix = f" (last error: {last})" if last else ""
    return ProviderError("the request's deadline passed" + suffix, retryable=False,
                         code="deadline_exceeded")
