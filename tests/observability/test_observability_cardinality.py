"""Label values that come from outside cannot grow the number of series without bound.

1,000 random team and task names through the worker's token/cost metrics, the aggregator's
response metrics and the runtime's budget gauge add at most a fixed number of series (the
allow-list or first-seen limit, plus ``-`` and ``other``); the lag series of a partition
revoked by a rebalance on the real broker disappear from /metrics.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from modelbus_adapter_worker.adapters import Completion
from modelbus_adapter_worker.telemetry import attempt_span, record_attempt
from modelbus_aggregator.metrics import observe_response
from modelbus_runtime.consumer import EventConsumer
from modelbus_runtime.dlq import DeadLetterPublisher
from modelbus_runtime.kafka import EventProducer, ensure_topics
from modelbus_runtime.metrics import BUDGET_REMAINING, BoundedLabel, MetricLabelSettings
from modelbus_runtime.settings import RuntimeSettings
from modelbus_schemas import Caller, ResponseEvent
from prometheus_client import REGISTRY

from tests.worker.worker_helpers import make_task

NAMES = 1_000
LIMIT = MetricLabelSettings().metrics_label_limit
#: first-seen (or allow-listed) values, plus "-" and "other"
MAX_VALUES = LIMIT + 2


def series(name: str) -> set[tuple]:
    return {tuple(sorted(s.labels.items())) for family in REGISTRY.collect()
            for s in family.samples if s.name == name}


def random_name() -> str:
    return "x-" + uuid.uuid4().hex


def test_bounded_label_keeps_allowed_values_and_collapses_the_rest():
    label = BoundedLabel(["support", "search"])
    assert [label("support"), label("search"), label("sales"), label(None)] == [
        "support", "search", "other", "-"]
    first_seen = BoundedLabel(limit=3)
    assert {first_seen(random_name()) for _ in range(NAMES)} - {"other"} != set()
    assert len({first_seen(random_name()) for _ in range(NAMES)}) == 1  # all "other" now


def test_random_teams_add_a_bounded_number_of_token_and_cost_series():
    before = {n: series(n) for n in ("modelbus_tokens_total", "modelbus_cost_usd_total")}
    completion = Completion(text="ok", finish_reason="stop", input_tokens=3, output_tokens=2,
                            response_model="gpt-4o-mini")
    for _ in range(NAMES):
        task = make_task("openai", "gpt-4o-mini").model_copy(
            update={"caller": Caller(tenant="default", team=random_name())})
        with attempt_span(task, 1) as span:
            record_attempt(span, task, 1, 5.0, completion, None)
    added_tokens = series("modelbus_tokens_total") - before["modelbus_tokens_total"]
    added_cost = series("modelbus_cost_usd_total") - before["modelbus_cost_usd_total"]
    assert 0 < len(added_tokens) <= 2 * MAX_VALUES  # input and output per team value
    assert 0 < len(added_cost) <= MAX_VALUES
    assert any(("team", "other") in s for s in added_cost)


def test_random_task_names_add_a_bounded_number_of_response_series():
    names = ("modelbus_responses_total", "modelbus_response_latency_seconds_count",
             "modelbus_response_cost_usd_total")
    before = {n: series(n) for n in names}
    for n in range(NAMES):
        observe_response(ResponseEvent(event_id=f"resp-{n}", request_id=f"r-{n}",
                                       task=random_name(), status="ok", latency_ms=12.0,
                                       cost_usd=0.001, created_at=datetime.now(UTC)))
    for name in names:
        added = series(name) - before[name]
        assert 0 < len(added) <= MAX_VALUES, (name, len(added))


def test_random_budget_scopes_add_a_bounded_number_of_series():
    before = series("modelbus_budget_remaining_usd")
    for _ in range(NAMES):
        BUDGET_REMAINING.labels(f"team:{random_name()}", "day").set(1.0)
    added = series("modelbus_budget_remaining_usd") - before
    assert 0 < len(added) <= MAX_VALUES


async def _lag_partitions(group: str, topic: str) -> set[str]:
    return {dict(s)["partition"] for s in series("modelbus_consumer_lag")
            if dict(s)["group"] == group and dict(s)["topic"] == topic}


async def test_lag_series_of_revoked_partitions_are_removed(kafka_bootstrap):
    settings = RuntimeSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_partitions=2)
    topic, group = f"test.lag.{uuid.uuid4().hex[:8]}", f"test-lag-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for partition in (0, 1):
            await producer.send_and_wait(topic, b"x", key=b"k", partition=partition)
    finally:
        await producer.stop()

    async def handler(message) -> None:
        await asyncio.sleep(0)

    events = EventProducer(settings, "test")
    await events.start()
    consumer = EventConsumer(settings, group_id=group, topics=[topic], handler=handler,
                             dlq=DeadLetterPublisher(events, "test", 1 << 20),
                             authenticate=False)
    other = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group)
    try:
        await consumer.start()
        for _ in range(300):
            if await _lag_partitions(group, topic) == {"0", "1"}:
                break
            await asyncio.sleep(0.1)
        assert await _lag_partitions(group, topic) == {"0", "1"}

        await other.start()  # joins the group: the consumer gives one partition away
        for _ in range(300):
            if len(consumer.assigned) == 1 and other.assignment():
                break
            await other.getmany(timeout_ms=100)
        assert len(consumer.assigned) == 1, consumer.assigned
        kept = {str(tp.partition) for tp in consumer.assigned}
        assert await _lag_partitions(group, topic) == kept
    finally:
        await other.stop()
        await consumer.stop()
        await events.stop()
