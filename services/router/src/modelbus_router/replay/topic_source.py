"""Recorded requests read from ``modelbus.requests.v1`` while the log still holds them.

The log keeps requests as their callers sent them — text the audit redacted or retention
purged is still whole there — but a record on the requests topic is only what somebody
claimed (any client may write it, naming any tenant). So a record is replayed only when the
audit store holds a genuine request row with the same (tenant, request id); the audit also
supplies what happened to it then. Records the audit does not hold are counted
(:attr:`TopicSource.unrecorded`) and skipped.

Reads every partition from its start (a plain consumer, no group, nothing committed), a
batch at a time (memory is one batch), up to the records produced before the read began:
it ends once every partition is past the end offset reported at the start (which some
brokers report low, hence reading on) and fetches bring nothing older. ``--sample`` does
not apply here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from modelbus_schemas import RequestEvent
from modelbus_schemas.topics import REQUESTS
from pydantic import ValidationError

from modelbus_router.replay.audit_source import AuditSource
from modelbus_router.replay.recorded import Recorded

FETCH_MS = 200
IDLE_ROUNDS = 10  # empty fetches in a row once every partition reached its end


class TopicSource:
    def __init__(self, client_options: dict, audit: AuditSource, batch: int = 500) -> None:
        self.options, self.audit, self.batch = client_options, audit, batch
        self.unrecorded = 0  # on the topic, not in the audit store (or not a valid request)
        self.window = audit.window

    async def count(self) -> int:
        consumer = AIOKafkaConsumer(**self.options, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()
            tps = [TopicPartition(REQUESTS, p)
                   for p in consumer.partitions_for_topic(REQUESTS) or ()]
            starts, ends = (await consumer.beginning_offsets(tps), await consumer.end_offsets(tps))
            return sum(ends[tp] - starts[tp] for tp in tps)
        finally:
            await consumer.stop()

    def _wanted(self, request: RequestEvent, timestamp_ms: int) -> bool:
        w = self.window
        at = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        return ((w.since is None or at >= w.since) and (w.until is None or at < w.until)
                and (w.tenant is None or request.caller.tenant == w.tenant)
                and (w.team is None or request.caller.team == w.team))

    async def _records(self) -> AsyncIterator[list[tuple[RequestEvent, datetime]]]:
        consumer = AIOKafkaConsumer(**self.options, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=50)
        await consumer.start()
        try:
            await consumer.topics()
            tps = [TopicPartition(REQUESTS, p)
                   for p in sorted(consumer.partitions_for_topic(REQUESTS) or ())]
            if not tps:
                return
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            for tp, start in (await consumer.beginning_offsets(tps)).items():
                consumer.seek(tp, start)
            idle, started_ms = 0, int(datetime.now(UTC).timestamp() * 1000)
            while idle < IDLE_ROUNDS:
                fetched = await consumer.getmany(timeout_ms=FETCH_MS, max_records=self.batch)
                out, newer = [], 0
                for records in fetched.values():
                    for record in records:
                        if record.timestamp > started_ms:  # arrived after the read began
                            newer += 1
                            continue
                        try:
                            request = RequestEvent.model_validate_json(record.value or b"")
                        except ValidationError:
                            self.unrecorded += 1
                            continue
                        if self._wanted(request, record.timestamp):
                            out.append((request, datetime.fromtimestamp(
                                record.timestamp / 1000, UTC)))
                if out:
                    yield out
                done = all([await consumer.position(tp) >= ends[tp] for tp in tps])
                only_newer = newer == sum(len(r) for r in fetched.values())
                idle = idle + 1 if done and only_newer else 0
        finally:
            await consumer.stop()

    async def batches(self) -> AsyncIterator[list[Recorded]]:
        async for records in self._records():
            known = await self.audit.recorded_for([r for r, _ in records])
            out = []
            for request, at in records:
                then = known.get((request.caller.tenant, request.request_id))
                if then is None:
                    self.unrecorded += 1
                    continue
                out.append(Recorded(request, then, at=at))
            if out:
                yield out
