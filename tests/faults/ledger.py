"""The ledger every fault scenario is checked against.

Every accepted request must end with exactly one response or exactly one dead-letter
record with a clear error; nothing may be lost; audit lineage must be complete. Records
are read with plain aiokafka from the topics' ends at the start of the scenario. A lost
request is explained by :func:`explain_lost`: where its events stopped along the pipeline
and how far the consuming group committed there.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from modelbus_audit.store import AuditStore
from modelbus_schemas.topics import REQUESTS, RESPONSES, RESULTS, all_topics, tasks_topic

DLQ_TOPICS = [t for t in all_topics() if t.endswith(".dlq")]
#: the topics a single-model request passes, with the consumer group that reads each
PIPELINE = {REQUESTS: "modelbus-router", tasks_topic("openai"): "modelbus-worker-openai",
            RESULTS: "modelbus-aggregator", RESPONSES: None}


class Recorder:
    """Collects responses and DLQ records (by key) from the moment it starts."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False, fetch_max_wait_ms=20,
                                         max_partition_fetch_bytes=16 * 1024 * 1024,
                                         client_id=f"ledger-{uuid.uuid4().hex[:6]}")
        self.bootstrap = bootstrap
        self.responses: dict[str, list[dict]] = {}
        self.dead: dict[str, list[dict[str, str]]] = {}
        self.pipeline_starts: dict[TopicPartition, int] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer.topics()
        tps = [TopicPartition(t, p) for t in [RESPONSES, *DLQ_TOPICS]
               for p in self.consumer.partitions_for_topic(t) or ()]
        pipeline = [TopicPartition(t, p) for t in PIPELINE
                    for p in self.consumer.partitions_for_topic(t) or ()]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)
        self.pipeline_starts = await self.consumer.end_offsets(pipeline)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            for tp, records in batch.items():
                for r in records:
                    key = r.key.decode("utf-8", "replace") if r.key else ""
                    if tp.topic == RESPONSES:
                        self.responses.setdefault(key, []).append(json.loads(r.value))
                    else:
                        headers = {k: v.decode("utf-8", "replace") for k, v in r.headers}
                        self.dead.setdefault(key, []).append(headers)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()

    def settled(self, ids: list[str]) -> bool:
        return all(i in self.responses or i in self.dead for i in ids)

    async def wait(self, ids: list[str], timeout: float, quiet: float = 3.0) -> None:
        """Until every id has an outcome (or timeout), then a quiet period for duplicates."""
        deadline = time.monotonic() + timeout
        while not self.settled(ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(quiet)


@dataclass
class Report:
    scenario: str
    sent: int
    responses: int
    errors: int
    dlq: int
    duplicates: int
    lost: int
    lineage_incomplete: int = 0
    provider_calls: int | None = None
    notes: list[str] = field(default_factory=list)
    lost_ids: list[str] = field(default_factory=list)

    def row(self) -> str:
        calls = "" if self.provider_calls is None else str(self.provider_calls)
        return (f"| {self.scenario} | {self.sent} | {self.responses} | {self.errors} | "
                f"{self.dlq} | {self.duplicates} | {self.lost} | {self.lineage_incomplete} | "
                f"{calls} |")


def tally(scenario: str, ids: list[str], rec: Recorder) -> Report:
    dup = 0
    lost = []
    errors = 0
    for i in ids:
        got = rec.responses.get(i, [])
        dead = rec.dead.get(i, [])
        outcomes = len(got) + len(dead)
        if outcomes == 0:
            lost.append(i)
        dup += max(0, outcomes - 1)
        errors += sum(1 for r in got if r["status"] != "ok")
    report = Report(
        scenario, len(ids), sum(1 for i in ids if i in rec.responses), errors,
        sum(1 for i in ids if i in rec.dead), dup, len(lost),
    )
    report.lost_ids = lost
    if lost:
        report.notes.append(f"lost: {lost[:5]}")
    return report


async def check_lineage(url: str, ids: list[str], rec: Recorder, report: Report,
                        timeout: float = 30.0) -> None:
    """Every request has request and response rows (or request and dead_letter)."""
    store = await AuditStore.open(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            incomplete = []
            for i in ids:
                kinds = Counter(row.kind for row in await store.lineage(i))
                want = {"request", "dead_letter"} if i in rec.dead else {"request", "response"}
                if i in rec.responses and rec.responses[i][0]["status"] == "ok":
                    want |= {"task", "result"}
                if not want <= set(kinds):
                    incomplete.append(i)
            if not incomplete or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        report.lineage_incomplete = len(incomplete)
        if incomplete:
            report.notes.append(f"incomplete lineage: {incomplete[:5]}")
    finally:
        await store.close()


async def explain_lost(rec: Recorder, report: Report) -> None:
    """Note, for each lost request, every pipeline record of it since the recorder started
    (``topic[partition]@offset``) and the offset the consuming group committed on that
    partition: a record at or past the committed offset was not finished by that service
    (far behind it: the service is working through a backlog)."""
    lost = report.lost_ids[:10]
    if not lost:
        return
    found: dict[str, list[tuple[TopicPartition, int]]] = {i: [] for i in lost}
    reader = AIOKafkaConsumer(bootstrap_servers=rec.bootstrap, group_id=None,
                              enable_auto_commit=False, max_partition_fetch_bytes=16 << 20)
    await reader.start()
    try:
        tps = list(rec.pipeline_starts)
        reader.assign(tps)
        ends = await reader.end_offsets(tps)
        for tp in tps:
            reader.seek(tp, rec.pipeline_starts[tp])
        deadline = time.monotonic() + 30.0
        while ([tp for tp in tps if await reader.position(tp) < ends[tp]]
               and time.monotonic() < deadline):
            for tp, records in (await reader.getmany(timeout_ms=500)).items():
                for r in records:
                    key = r.key.decode("utf-8", "replace") if r.key else ""
                    if key in found:
                        found[key].append((tp, r.offset))
    finally:
        await reader.stop()
    committed = {}
    for topic, group in PIPELINE.items():
        if group is None:
            continue
        spots = {tp for hits in found.values() for tp, _ in hits if tp.topic == topic}
        if spots:
            committed[group] = await _committed(rec.bootstrap, group, spots)
    for i in lost:
        where = ", ".join(
            f"{tp.topic}[{tp.partition}]@{off}"
            + (f" ({group} committed {committed[group].get(tp)})"
               if (group := PIPELINE.get(tp.topic)) in committed else "")
            for tp, off in sorted(found[i], key=lambda hit: list(PIPELINE).index(hit[0].topic)))
        report.notes.append(f"lost {i}: {where or 'no record on the pipeline topics'}")


async def _committed(bootstrap: str, group: str, tps: set[TopicPartition]) -> dict:
    """The group's committed offsets, read without joining the group."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    await probe.start()
    try:
        return {tp: await probe.committed(tp) for tp in tps}
    finally:
        await probe.stop()

