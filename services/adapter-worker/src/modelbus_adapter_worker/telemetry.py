"""Traces and metrics of provider calls, following the OpenTelemetry GenAI conventions.

One CLIENT span per provider attempt (``chat <model>``) with ``gen_ai.provider.name``,
``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.input_tokens`` / ``output_tokens``, ``gen_ai.response.finish_reasons`` and
``error.type``. Never prompt or response text. Metrics: provider latency and time to first
token, tokens and cost by team and model, retries, rate-limit waits, circuit state.
"""

from __future__ import annotations

from contextlib import contextmanager

from modelbus_runtime.metrics import TEAM_LABEL
from modelbus_runtime.tracing import genai_provider_name, span_or_carry
from modelbus_schemas import TaskEvent
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Gauge, Histogram

from modelbus_adapter_worker.adapters import Completion
from modelbus_adapter_worker.pricing import cost_usd

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10, 30, 60)

PROVIDER_LATENCY = Histogram(
    "modelbus_provider_latency_seconds", "Duration of one provider HTTP attempt",
    ["provider", "model", "outcome"], buckets=_LATENCY_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "modelbus_provider_ttft_seconds", "Time to the first streamed token",
    ["provider", "model"], buckets=_LATENCY_BUCKETS,
)
TOKENS = Counter(
    "modelbus_tokens_total", "Tokens used, by team, model and direction",
    ["team", "provider", "model", "direction"],
)
COST = Counter("modelbus_cost_usd_total", "Provider cost in USD", ["team", "provider", "model"])
RETRIES = Counter("modelbus_retries_total", "Attempts after the first", ["provider", "model"])
RATE_LIMIT_WAIT = Histogram(
    "modelbus_rate_limit_wait_seconds", "Time spent waiting for the shared rate limit",
    ["provider"], buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
)
CIRCUIT_OPEN = Gauge(
    "modelbus_circuit_open", "1 while this worker sees the circuit of a model open",
    ["provider", "model"],
)


@contextmanager
def attempt_span(task: TaskEvent, number: int):
    operation = "embeddings" if task.operation == "embed" else "chat"
    with span_or_carry(
        f"{operation} {task.model}",
        otel_context.get_current(),
        kind=SpanKind.CLIENT,
        attributes=lambda: {
            "gen_ai.provider.name": genai_provider_name(task.provider),
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": task.model,
            "modelbus.attempt": number,
            "modelbus.request_id": task.request_id,
            "modelbus.tenant": task.tenant,
            **({"gen_ai.request.max_tokens": task.params.max_tokens}
               if task.params.max_tokens else {}),
        },
    ) as span:
        yield span


def record_attempt(span, task: TaskEvent, number: int, latency_ms: float,
                   completion: Completion | None, error) -> None:
    outcome = "ok" if error is None else error.code
    PROVIDER_LATENCY.labels(task.provider, task.model, outcome).observe(latency_ms / 1000)
    if number > 1:
        RETRIES.labels(task.provider, task.model).inc()
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error.code))
        span.set_attribute("error.type", error.code)
        if error.status_code:
            span.set_attribute("http.response.status_code", error.status_code)
        return
    team = TEAM_LABEL(task.caller.team)
    TOKENS.labels(team, task.provider, task.model, "input").inc(completion.input_tokens)
    TOKENS.labels(team, task.provider, task.model, "output").inc(completion.output_tokens)
    COST.labels(team, task.provider, task.model).inc(
        cost_usd(task.model, completion.input_tokens, completion.output_tokens))
    if completion.ttft_ms is not None:
        TIME_TO_FIRST_TOKEN.labels(task.provider, task.model).observe(completion.ttft_ms / 1000)
    span.set_attributes({
        "gen_ai.response.model": completion.response_model or task.model,
        "gen_ai.usage.input_tokens": completion.input_tokens,
        "gen_ai.usage.output_tokens": completion.output_tokens,
        "gen_ai.response.finish_reasons": [completion.finish_reason],
    })
