"""Dead-letter topics for ops: list, inspect, filter, and redrive records to their source.

A redrive republishes the record's original key, value and headers to the source topic,
with ``ce_id`` made unique to the DLQ record (``<original>:redrive:<dlq id>``) and a
``modelbus_redrive_of`` header, so lineage shows the redrive. Redriving the same record
twice has the effect of once: a claim per DLQ record id is kept in Redis; a record already
redriven is reported and not sent again (``force`` resends a record whose earlier redrive
was interrupted before it was confirmed).

Kafka credentials, where the broker wants them (Kubernetes: the ``modelbus-ops`` KafkaUser),
come from the same environment as a service's: ``MODELBUS_KAFKA_SECURITY_PROTOCOL``,
``MODELBUS_KAFKA_SASL_MECHANISM``, ``MODELBUS_KAFKA_SASL_USERNAME``, ``MODELBUS_KAFKA_SASL_PASSWORD``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from modelbus_runtime.settings import RuntimeSettings
from modelbus_schemas import DeadLetterInfo
from modelbus_schemas.cloudevents import header_map
from modelbus_schemas.deadletter import HEADER_PREFIX
from modelbus_schemas.topics import all_topics
from pydantic import ValidationError

REDRIVE_HEADER = "modelbus_redrive_of"
LEDGER_TTL_S = 30 * 24 * 3600


@dataclass(frozen=True)
class DlqRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    info: DeadLetterInfo | None

    @property
    def dlq_id(self) -> str:
        if self.info:
            return self.info.event_id()
        return f"dlq:{self.topic}:{self.partition}:{self.offset}"

    def summary(self) -> str:
        key = self.key.decode("utf-8", "replace") if self.key else "-"
        size = len(self.value or b"")
        if self.info is None:
            return f"{self.topic}[{self.partition}]@{self.offset} key={key} (no dlq headers)"
        i = self.info
        return (f"{self.topic}[{self.partition}]@{self.offset} key={key} reason={i.reason} "
                f"service={i.service} error={i.error_class}: {i.error_message[:80]} "
                f"({size} bytes, from {i.source_topic}[{i.source_partition}]@{i.source_offset})")


@dataclass(frozen=True)
class Filter:
    reason: str | None = None
    service: str | None = None
    key: str | None = None
    contains: str | None = None

    def __call__(self, record: DlqRecord) -> bool:
        info = record.info
        if self.reason and (info is None or info.reason != self.reason):
            return False
        if self.service and (info is None or info.service != self.service):
            return False
        if self.key and (record.key or b"").decode("utf-8", "replace") != self.key:
            return False
        return not (self.contains and (info is None or self.contains not in info.error_message))


def _client_options(bootstrap: str) -> dict[str, object]:
    """aiokafka client arguments: ``bootstrap`` plus any SASL login from the environment."""
    return {**RuntimeSettings().kafka_client_options(), "bootstrap_servers": bootstrap}


def dlq_topics() -> list[str]:
    return [t for t in all_topics() if t.endswith(".dlq")]


QUIET_S = 0.4
"""How long a partition's fetch position must stay put, at or past the watermark, before its
end is taken as reached. Fetches wait at most 50 ms, so this is several empty fetches."""


async def read_dlq(bootstrap: str, topics: list[str], want: Callable[[DlqRecord], bool] = Filter(),
                   limit: int | None = None, stall_s: float = 30.0,
                   quiet_s: float = QUIET_S) -> list[DlqRecord]:
    """Every record currently in the DLQ topics (from the beginning to the real end).

    Offsets are reset to the earliest on assignment (``auto_offset_reset``) rather than by
    ``seek_to_beginning``: the latter races the reset aiokafka starts on ``assign`` and can
    lose to it, silently starting at the end.

    The end offset a broker reports is a lower bound, not the end: the local tansu broker
    answers with a stale high watermark (one past the base offset of the last batch, so 20
    records produced in a few batches report an end of 3). Each partition is therefore read
    until its position is at least the reported end (or the high watermark seen on fetch
    responses, whichever is larger) *and* has not advanced for ``quiet_s``: fetching past the
    watermark returns whatever the log holds. All partitions are fetched together, so an empty
    topic costs one quiet period. A partition whose position stays below the reported end for
    ``stall_s`` raises :class:`DlqReadStalled` rather than return a partial listing.
    """
    consumer = AIOKafkaConsumer(**_client_options(bootstrap), enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest",
                                fetch_max_wait_ms=50,
                                max_partition_fetch_bytes=64 * 1024 * 1024)
    await consumer.start()
    try:
        await consumer.topics()  # loads metadata of every topic
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        if not tps:
            return []
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        ends = dict(await consumer.end_offsets(tps))
        for tp in tps:
            consumer.seek(tp, starts[tp])
        found = await _read_to_end(consumer, tps, ends, want, limit, stall_s, quiet_s)
        found.sort(key=lambda r: (r.topic, r.partition, r.offset))
        return found[:limit] if limit else found
    finally:
        await consumer.stop()


async def _read_to_end(consumer: AIOKafkaConsumer, tps: list[TopicPartition],
                       ends: dict[TopicPartition, int], want: Callable[[DlqRecord], bool],
                       limit: int | None, stall_s: float, quiet_s: float) -> list[DlqRecord]:
    """Fetch every partition until each is quiet at or past its end (see :func:`read_dlq`)."""
    now = time.monotonic()
    positions = {tp: await consumer.position(tp) for tp in tps}
    moved_at = dict.fromkeys(tps, now)
    pending = set(tps)
    found: list[DlqRecord] = []
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=100)
        for records in batch.values():
            for r in records:
                record = _to_record(r)
                if want(record):
                    found.append(record)
        if limit and len(found) >= limit:
            break
        now = time.monotonic()
        stalled = []
        for tp in list(pending):
            position = await consumer.position(tp)
            ends[tp] = max(ends[tp], consumer.highwater(tp) or 0)
            if position != positions[tp]:
                positions[tp], moved_at[tp] = position, now
            idle = now - moved_at[tp]
            if position >= ends[tp]:
                if idle >= quiet_s:
                    pending.discard(tp)
            elif idle >= stall_s:
                stalled.append(tp)
        if stalled:
            raise DlqReadStalled(sorted(f"{tp.topic}[{tp.partition}]" for tp in stalled))
    return found


class DlqReadStalled(RuntimeError):
    """Some partitions stopped advancing before their end offset: the listing would be partial."""

    def __init__(self, partitions: list[str]) -> None:
        super().__init__("DLQ read made no progress on " + ", ".join(partitions)
                         + "; the listing would be incomplete")
        self.partitions = partitions


def _to_record(r) -> DlqRecord:
    headers = list(r.headers or ())
    try:
        info = DeadLetterInfo.from_headers(header_map(headers))
    except ValidationError:
        info = None
    return DlqRecord(r.topic, r.partition, r.offset, r.key, r.value, headers, info)


@dataclass(frozen=True)
class RedriveOutcome:
    record: DlqRecord
    sent: bool
    note: str


async def redrive(bootstrap: str, redis_url: str, records: list[DlqRecord],
                  force: bool = False) -> list[RedriveOutcome]:
    """Send records back to their source topics, each at most once (see module docstring)."""
    client = aioredis.Redis.from_url(redis_url, socket_timeout=2)
    producer = AIOKafkaProducer(**_client_options(bootstrap), acks="all")
    await producer.start()
    outcomes = []
    try:
        for record in records:
            outcomes.append(await _redrive_one(client, producer, record, force))
    finally:
        await producer.stop()
        await client.aclose()
    return outcomes


async def _redrive_one(client, producer, record: DlqRecord, force: bool) -> RedriveOutcome:
    if record.info is None:
        return RedriveOutcome(record, False, "no dead-letter headers: source unknown")
    ledger = f"modelbus:redrive:{record.dlq_id}"
    claimed = await client.set(ledger, b"pending", nx=True, ex=LEDGER_TTL_S)
    if not claimed:
        state = await client.get(ledger)
        if state == b"done" or not force:
            return RedriveOutcome(record, False, f"already redriven ({(state or b'').decode()})")
    headers = []
    for name, value in record.headers:
        if name.startswith(HEADER_PREFIX) or name == REDRIVE_HEADER:
            continue
        if name == "ce_id":
            value = value + b":redrive:" + record.dlq_id.encode()
        headers.append((name, value))
    headers.append((REDRIVE_HEADER, record.dlq_id.encode()))
    await producer.send_and_wait(record.info.source_topic, record.value, key=record.key,
                                 headers=headers)
    await client.set(ledger, b"done", ex=LEDGER_TTL_S)
    return RedriveOutcome(record, True, f"sent to {record.info.source_topic}")

