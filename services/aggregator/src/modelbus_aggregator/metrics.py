"""Prometheus metrics of the aggregator: responses by task and status, end-to-end latency
(from the router receiving the request to the response being published), cost by task,
and for answers that streamed, the time to first token of the answering call by task (the
route; the workers count it by provider and model) and the stream events per request.

The ``task`` label is bounded (``modelbus_runtime.metrics.BoundedLabel``): the tasks in
``MODELBUS_METRICS_TASKS`` when set, else the first ones seen, and ``other`` beyond."""

from __future__ import annotations

from modelbus_runtime.metrics import bounded_label
from modelbus_schemas import ResponseEvent
from prometheus_client import Counter, Histogram

RESPONSES = Counter(
    "modelbus_responses_total", "Responses published, by task and status", ["task", "status"]
)
END_TO_END = Histogram(
    "modelbus_response_latency_seconds",
    "From the router receiving a request to its response being published",
    ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RESPONSE_COST = Counter("modelbus_response_cost_usd_total", "Cost of answered requests", ["task"])
TIME_TO_FIRST_TOKEN = Histogram(
    "modelbus_response_ttft_seconds",
    "Time to the first token of the answering call, of responses whose answer streamed",
    ["task"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STREAM_EVENTS = Histogram(
    "modelbus_response_stream_events", "Stream events published per streamed request",
    ["task"], buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
TASK_LABEL = bounded_label("tasks")


def observe_response(response: ResponseEvent) -> None:
    task = TASK_LABEL(response.task)
    RESPONSES.labels(task, response.status).inc()
    if response.latency_ms is not None:
        END_TO_END.labels(task).observe(response.latency_ms / 1000)
    RESPONSE_COST.labels(task).inc(response.cost_usd)
    if response.stream_events:
        STREAM_EVENTS.labels(task).observe(response.stream_events)
        if response.ttft_ms is not None:
            TIME_TO_FIRST_TOKEN.labels(task).observe(response.ttft_ms / 1000)
