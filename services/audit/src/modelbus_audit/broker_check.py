"""``verify --against-broker``: what the broker holds on every audited topic, compared with
what the audit store recorded, record by record.

Every topic matching ``AUDIT_PATTERN`` and each of its partitions is read from the first
offset the broker still holds to the real end. The end is not the high watermark the broker
reports when reading starts (it can lag, as on the local broker): reading goes on until the
fetch position stops advancing for a quiet period *and* has reached the reported end; a
partition that stalls before its reported end is reported as unread (``incomplete``).

A record is held when the store has a row at its (topic, partition, offset), or a row of the
same identity with the same content and authenticity (an exact copy the audit stores once,
:mod:`modelbus_audit.store`). Every other record is a gap: topic, partition, offset and the
request id of its key. This module is an adapter (it talks to Kafka); the rules of identity
are :mod:`modelbus_audit.record`'s.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from modelbus_runtime.signing import KeyRing
from modelbus_schemas.topics import AUDIT_PATTERN

from modelbus_audit.record import AuditRecord
from modelbus_audit.store import AuditStore

#: Called about once a second with (records read, gaps found, partitions at their end, total).
Progress = Callable[[int, int, int, int], None]


@dataclass(frozen=True)
class Gap:
    topic: str
    partition: int
    offset: int
    request_id: str | None

    def describe(self) -> str:
        return (f"  missing: {self.topic}[{self.partition}]@{self.offset}"
                f"  request_id={self.request_id or '-'}")


@dataclass
class BrokerReport:
    topics: int = 0
    partitions: int = 0
    records: int = 0
    copies: int = 0
    gaps: list[Gap] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.gaps and not self.incomplete

    def describe(self) -> str:
        verdict = "OK" if self.ok else "MISSING RECORDS" if self.gaps else "INCOMPLETE"
        lines = [(
            f"audit store against the broker {verdict}: {self.records} records in "
            f"{self.partitions} partitions of {self.topics} topics read, "
            f"{len(self.gaps)} missing from the store, {self.copies} held as exact copies"
        )]
        lines += [gap.describe() for gap in self.gaps]
        lines += [f"  not read to its end (the broker stopped answering): {tp}"
                  for tp in self.incomplete]
        return "\n".join(lines)


async def check_against_broker(
    store: AuditStore, bootstrap: str, *, ring: KeyRing | None = None,
    pattern: str = AUDIT_PATTERN, quiet_s: float = 2.0, stall_s: float = 60.0,
    progress: Progress | None = None,
) -> BrokerReport:
    """Compare every audited partition of the broker at ``bootstrap`` with ``store``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        return await _check(consumer, store, ring, pattern, quiet_s, stall_s, progress)
    finally:
        await consumer.stop()


async def _still_missing(store: AuditStore, gaps: list[Gap]) -> list[Gap]:
    fresh: dict[tuple[str, int], set[int]] = {}
    for gap in gaps:
        where = (gap.topic, gap.partition)
        if where not in fresh:
            fresh[where] = await store.positions(*where)
    return [gap for gap in gaps if gap.offset not in fresh[(gap.topic, gap.partition)]]


async def _check(consumer: AIOKafkaConsumer, store: AuditStore, ring: KeyRing | None,
                 pattern: str, quiet_s: float, stall_s: float,
                 progress: Progress | None) -> BrokerReport:
    matcher = re.compile(pattern)
    topics = sorted(t for t in await consumer.topics() if matcher.match(t))
    tps = [TopicPartition(t, p) for t in topics
           for p in sorted(consumer.partitions_for_topic(t) or ())]
    report = BrokerReport(topics=len(topics), partitions=len(tps))
    if not tps:
        return report
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    reported_end = await consumer.end_offsets(tps)
    held: dict[TopicPartition, set[int]] = {}
    last_advance = last_report = time.monotonic()
    while True:
        batch = await consumer.getmany(timeout_ms=500, max_records=5000)
        now = time.monotonic()
        for tp, messages in batch.items():
            if tp not in held:
                held[tp] = await store.positions(tp.topic, tp.partition)
            for m in messages:
                report.records += 1
                if m.offset in held[tp]:
                    continue
                record = AuditRecord.from_message(m.topic, m.partition, m.offset, m.key,
                                                  m.value, list(m.headers or ()),
                                                  m.timestamp, ring)
                if await store.holds_copy(record):
                    report.copies += 1
                else:
                    key = m.key.decode("utf-8", "replace") if m.key else None
                    report.gaps.append(Gap(m.topic, m.partition, m.offset, key))
        if batch:
            last_advance = now
        behind = [tp for tp in tps if await consumer.position(tp) < reported_end[tp]]
        if progress and now - last_report >= 1.0:
            progress(report.records, len(report.gaps), len(tps) - len(behind), len(tps))
            last_report = now
        quiet = now - last_advance
        if quiet >= quiet_s and not behind:
            break
        if quiet >= stall_s:
            report.incomplete = [f"{tp.topic}[{tp.partition}]" for tp in behind]
            break
    if progress:
        progress(report.records, len(report.gaps), len(tps), len(tps))
    report.gaps = await _still_missing(store, report.gaps)  # rows the audit wrote meanwhile
    report.gaps.sort(key=lambda g: (g.topic, g.partition, g.offset))
    return report
