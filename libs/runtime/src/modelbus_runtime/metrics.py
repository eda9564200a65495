"""Prometheus metrics shared by every service's runtime (service-specific ones live with them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_HANDLED = Counter(
    "modelbus_messages_handled_total",
    "Messages handled by a consumer, by topic and outcome",
    ["topic", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "modelbus_handler_seconds",
    "Time spent handling one message",
    ["topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DLQ_MESSAGES = Counter(
    "modelbus_dlq_messages_total", "Messages sent to a dead-letter topic", ["topic", "reason"]
)
IN_FLIGHT = Gauge("modelbus_in_flight_messages", "Messages being handled now", ["group"])
INFRA_RETRIES = Counter(
    "modelbus_infra_retries_total",
    "In-place retries because a dependency (Redis, store, broker) was unavailable",
    ["topic"],
)
CONSUMER_LAG = Gauge(
    "modelbus_consumer_lag",
    "Messages not yet consumed: partition high-water mark minus position",
    ["group", "topic", "partition"],
)
BUDGET_REMAINING = Gauge(
    "modelbus_budget_remaining_usd",
    "Budget left in the current period, as of the last reservation",
    ["scope", "period"],
)
