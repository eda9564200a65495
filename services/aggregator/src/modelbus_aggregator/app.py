"""Aggregator composition root: results in, next steps and exactly one response out.

Wires the Kafka consumer of ``modelbus.results.v1``, the outbox (publishing tasks to the
provider topics and responses to reply topics), the Redis fan-in store, the deadline timer,
and the budget/cache settlement. All decisions live in :mod:`modelbus_aggregator.engine`.
"""

from __future__ import annotations

from aiokafka.errors import KafkaError
from modelbus_runtime.budgets import Budgets
from modelbus_runtime.consumer import EventConsumer
from modelbus_runtime.errors import TransientInfraError
from modelbus_runtime.inbound import Inbound
from modelbus_runtime.kafka import EventProducer
from modelbus_runtime.redis import build_redis
from modelbus_runtime.response_cache import ResponseCache
from modelbus_runtime.service import Service, ServiceContext, run_service
from modelbus_runtime.settled import SettledMarks
from modelbus_runtime.signing import KeyRing
from modelbus_schemas import ResponseEvent, ResultEvent, TaskEvent
from modelbus_schemas.topics import RESULTS, tasks_topic

from modelbus_aggregator.deadlines import DeadlineScheduler
from modelbus_aggregator.engine import Aggregator
from modelbus_aggregator.output_guards import OutputGuardian
from modelbus_aggregator.published import response_on_topic
from modelbus_aggregator.settings import AggregatorSettings
from modelbus_aggregator.settlement import Settlement
from modelbus_aggregator.state import FanInStore


class KafkaOutbox:
    def __init__(self, producer: EventProducer, bootstrap: str,
                 ring: KeyRing | None = None) -> None:
        self.producer = producer
        self.bootstrap = bootstrap
        self.ring = ring

    async def was_published(self, topic: str, response: ResponseEvent,
                            since_ms: int | None) -> bool:
        """After a takeover: did the crashed handler publish before it died?"""
        if since_ms is None:
            return False
        return await response_on_topic(self.bootstrap, topic, response.request_id,
                                       response.event_id, since_ms - 1000, self.ring,
                                       client_options=self.producer.settings.kafka_client_options())

    async def publish_task(self, task: TaskEvent, trace: dict[str, str]) -> None:
        await self._publish(tasks_topic(task.provider), task, task.request_id, task.event_id,
                            trace)

    async def publish_response(self, topic: str, response: ResponseEvent,
                               trace: dict[str, str]) -> None:
        await self._publish(topic, response, response.request_id, response.event_id, trace)

    async def _publish(self, topic, event, key, event_id, trace) -> None:
        try:
            await self.producer.publish(topic, event, key=key, event_id=event_id, headers=trace)
        except KafkaError as exc:
            raise TransientInfraError(f"broker unavailable: {exc.__class__.__name__}") from exc


async def build(ctx: ServiceContext) -> Service:
    settings: AggregatorSettings = ctx.settings  # type: ignore[assignment]
    redis = build_redis(settings)
    store = FanInStore(redis, settings.aggregator_state_prefix,
                       settings.aggregator_publish_lease_ms)
    aggregator = Aggregator(
        store, KafkaOutbox(ctx.producer, settings.kafka_bootstrap_servers,
                           settings.signing_ring()),
        deadline_grace_ms=settings.aggregator_deadline_grace_ms,
        stage_retries=settings.aggregator_stage_retries,
        after_response=Settlement(Budgets(redis), ResponseCache(redis),
                                  settings.aggregator_cache_ttl_s),
        guards=OutputGuardian(redis) if settings.aggregator_output_guards else None,
        settled=SettledMarks(redis),
    )

    async def handle(message: Inbound) -> None:
        result = message.decode(ResultEvent)
        await aggregator.on_result(result, message.passthrough_headers())

    timer = DeadlineScheduler(store, aggregator.on_deadline,
                              tick_s=settings.aggregator_deadline_tick_ms / 1000,
                              idle_tick_s=settings.aggregator_deadline_idle_tick_ms / 1000)
    timer.start()
    consumer = EventConsumer(
        settings, group_id=settings.aggregator_group_id, topics=[RESULTS], dlq=ctx.dlq,
        handler=handle,
    )
    return Service(consumers=[consumer], closers=[redis.aclose, timer.stop])


def main() -> None:
    run_service("aggregator", AggregatorSettings(), build)


if __name__ == "__main__":
    main()
