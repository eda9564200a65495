"""Prometheus metrics shared by every service's runtime (service-specific ones live with them),
and the one way a label takes a value from outside: :class:`BoundedLabel`.

Every label value must come from a bounded set, or one caller could create a series per
request and exhaust Prometheus. Values that come from events (a team, a task name, a budget
scope) pass through a :class:`BoundedLabel`: an allow-list from configuration when one is
set, else the first ``limit`` distinct values seen, and everything else collapses to
``other``. Consumer-lag series of partitions this process no longer owns are removed on
revocation (:func:`forget_partitions`), so a rebalance leaves no stale gauge behind.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Annotated

from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: What an out-of-bounds label value becomes.
OTHER = "other"
#: What a missing value (no team, no task) becomes.
NONE = "-"


class MetricLabelSettings(BaseSettings):
    """Allow-lists of label values (environment, prefix ``MODELBUS_``): comma-separated, e.g.
    ``MODELBUS_METRICS_TEAMS=support,search``. Unset: the first ``metrics_label_limit``
    distinct values seen are kept."""

    model_config = SettingsConfigDict(env_prefix="MODELBUS_", extra="ignore")

    metrics_teams: Annotated[list[str] | None, NoDecode] = None
    metrics_tasks: Annotated[list[str] | None, NoDecode] = None
    metrics_label_limit: int = Field(default=50, ge=0)

    @field_validator("metrics_teams", "metrics_tasks", mode="before")
    @classmethod
    def _split(cls, value):
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


class BoundedLabel:
    """Maps an outside value to one of at most ``len(allowed)`` (or ``limit``) values plus
    ``-`` (missing) and ``other``. Thread-safe: the first-seen set is shared by threads."""

    def __init__(self, allowed: Iterable[str] | None = None, limit: int = 50) -> None:
        self.allowed = frozenset(allowed) if allowed is not None else None
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        if not value:
            return NONE
        if self.allowed is not None:
            return value if value in self.allowed else OTHER
        if value in self._seen:
            return value
        with self._lock:
            if value in self._seen or len(self._seen) < self.limit:
                self._seen.add(value)
                return value
        return OTHER


def bounded_label(kind: str) -> BoundedLabel:
    """The label for ``kind`` ("teams" or "tasks") under this process's configuration."""
    settings = MetricLabelSettings()
    return BoundedLabel(getattr(settings, f"metrics_{kind}"), settings.metrics_label_limit)


#: ``team`` on tokens and cost (adapter worker).
TEAM_LABEL = bounded_label("teams")
#: ``scope`` of budgets (``team:<name>`` takes one value per team with ``name: '*'``).
BUDGET_SCOPE_LABEL = BoundedLabel(limit=MetricLabelSettings().metrics_label_limit)

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


class _BoundedScopeGauge:
    """``modelbus_budget_remaining_usd`` with its ``scope`` label bounded: budget scopes
    such as ``team:<name>`` with ``name: '*'`` take one value per team."""

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge

    def labels(self, scope: str, period: str):
        return self.gauge.labels(BUDGET_SCOPE_LABEL(scope), period)


BUDGET_REMAINING = _BoundedScopeGauge(Gauge(
    "modelbus_budget_remaining_usd",
    "Budget left in the current period, as of the last reservation",
    ["scope", "period"],
))


def forget_partitions(group: str, partitions: Iterable) -> None:
    """Remove the lag series of ``partitions`` (TopicPartitions) of consumer ``group``:
    called when they are revoked, so a gauge never reports a partition another
    process owns now."""
    for tp in partitions:
        try:
            CONSUMER_LAG.remove(group, tp.topic, str(tp.partition))
        except KeyError:
            pass
