"""Counterfactual execution, the part that talks to the broker and Redis: send the candidate's
tasks for a sample of replayed requests to the normal workers, collect the answers on the
run's own reply topic, and ask the plan's judge to compare them with the originals.

For each window of ``concurrency`` picks: reserve the pick's estimated cost on the run's
budget scope (:class:`~modelbus_runtime.budgets.Budgets`, the router's own reservation; the
aggregator settles it with the actual cost, as for any request), publish its tasks to the
provider task topics signed as the router role, then wait (``timeout_s``) for the answers;
then the same for the judge tasks of the window's answered picks. The first reservation the
cap refuses stops execution: that pick and every later one are reported ``budget``. Answers
are read from ``modelbus.responses.replay-<run id>`` (created here) and only those signed by
a role allowed on it (the aggregator's) count. Nothing is sent to any original reply topic,
and no budget but the run's is reserved or charged.

Imported by the CLI only (``modelbus replay --execute``): the router process never loads it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from modelbus_aggregator.judge import ensemble_messages, question_of, read_choice
from modelbus_runtime.budgets import BudgetExceeded, BudgetLimit, Budgets
from modelbus_runtime.kafka import EventProducer, ensure_topics
from modelbus_runtime.settings import RuntimeSettings
from modelbus_runtime.signing import Unauthenticated, verify
from modelbus_schemas import ResponseEvent, TaskEvent
from modelbus_schemas.topics import ROUTER, tasks_topic, writer_roles
from pydantic import ValidationError

from modelbus_router.policy import Policy
from modelbus_router.replay.counterfactual import (
    CANDIDATE,
    ORIGINAL,
    Counterfactual,
    Executed,
    Pick,
    Run,
    judge_estimate,
    judge_of,
    judge_task,
    tasks_for,
)

Progress = Callable[[str], None]
PERIOD = "month"  # every reservation of a run names the period it started in


class Executor:
    def __init__(self, settings: RuntimeSettings, redis, policy: Policy, run: Run, *,
                 timeout_s: float = 120.0, concurrency: int = 8,
                 progress: Progress | None = None) -> None:
        self.settings, self.policy, self.run = settings, policy, run
        self.budgets = Budgets(redis)
        self.limit = BudgetLimit(run.budget_scope, PERIOD, run.budget_usd)
        self.timeout_s, self.concurrency = timeout_s, max(1, concurrency)
        self.progress = progress or (lambda _: None)
        self.producer = EventProducer(settings, f"replay-{run.run_id}", role=ROUTER)
        self.answers: dict[str, ResponseEvent] = {}
        self.rejected = 0  # records on the reply topic not signed by an allowed role

    async def execute(self, picks: list[Pick], originals: dict[tuple[str, str], str | None],
                      out: Counterfactual) -> Counterfactual:
        await ensure_topics(self.settings, [self.run.reply_topic])
        consumer = AIOKafkaConsumer(**self.settings.kafka_client_options(), group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    fetch_max_wait_ms=50)
        await consumer.start()
        await self.producer.start()
        try:
            await self._assign(consumer)
            rows = [Executed.of(self.run, p, originals.get(
                (p.recorded.request.caller.tenant, p.recorded.request.request_id))) for p in picks]
            out.rows = rows
            stopped = False
            for start in range(0, len(picks), self.concurrency):
                window = list(zip(picks[start:start + self.concurrency],
                                  rows[start:start + self.concurrency], strict=True))
                if stopped:
                    for _, row in window:
                        row.status = "budget"
                    continue
                sent = []
                for pick, row in window:
                    if stopped or not await self._send(pick, row):
                        stopped = True
                        row.status = "budget"
                        continue
                    sent.append((pick, row))
                await self._collect(consumer, [r.replay_request_id for _, r in sent])
                for _, row in sent:
                    self._settle(row)
                stopped = await self._judge(consumer, sent) or stopped
                done = sum(r.status != "pending" for r in rows)
                self.progress(f"executed {done}/{len(rows)} requests, "
                              f"{out.count('ok')} answered, {out.spent_usd:.6f} USD spent")
        finally:
            out.rejected_records = self.rejected
            await self.producer.stop()
            await consumer.stop()
        return out

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        topic = self.run.reply_topic
        parts = None
        for _ in range(100):
            await consumer.topics()
            parts = consumer.partitions_for_topic(topic)
            if parts:
                break
            await asyncio.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in sorted(parts or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)

    async def _reserve(self, hold_id: str, amount: float):
        try:
            return await self.budgets.reserve(hold_id, [self.limit], amount, now=self.run.started)
        except BudgetExceeded:
            return None

    async def _publish(self, tasks: list[TaskEvent]) -> None:
        await asyncio.gather(*(self.producer.publish(tasks_topic(t.provider), t,
                                                     key=t.request_id, event_id=t.event_id)
                               for t in tasks))

    async def _send(self, pick: Pick, row: Executed) -> bool:
        """Reserve and publish one pick's tasks; False when the cap refuses the reservation."""
        hold = await self._reserve(f"{self.run.budget_scope}:{row.replay_request_id}",
                                   pick.decision.estimated_cost_usd)
        if hold is None:
            return False
        await self._publish(tasks_for(self.run, pick, hold))
        return True

    async def _collect(self, consumer: AIOKafkaConsumer, ids: list[str]) -> None:
        """Read the reply topic until every one of ``ids`` is answered or the timeout."""
        wanted = set(ids) - set(self.answers)
        deadline = time.monotonic() + self.timeout_s
        roles = writer_roles(self.run.reply_topic) or frozenset()
        ring = self.settings.signing_ring()
        while wanted and time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=200)
            for records in fetched.values():
                for record in records:
                    try:
                        verify(ring, topic=record.topic, key=record.key, value=record.value,
                               headers=record.headers, allowed_roles=roles)
                        response = ResponseEvent.model_validate_json(record.value or b"")
                    except (Unauthenticated, ValidationError):
                        self.rejected += 1
                        continue
                    self.answers.setdefault(response.request_id, response)
                    wanted.discard(response.request_id)

    def _settle(self, row: Executed) -> None:
        response = self.answers.get(row.replay_request_id)
        if response is None:
            row.status = "timeout"
            return
        row.status = "ok" if response.status == "ok" else "error"
        row.candidate = response.output
        row.answered_by = list(response.models)
        row.cost_usd = response.cost_usd
        row.error = response.error.message if response.error else None

    async def _judge(self, consumer: AIOKafkaConsumer, sent: list[tuple[Pick, Executed]]) -> bool:
        """Judge the window's answered picks whose plan names a judge; True when the cap
        refused a judge's reservation."""
        asked, stopped = [], False
        for pick, row in sent:
            judge = judge_of(pick)
            if judge is None:
                continue
            row.judge = judge.ref
            if row.status != "ok" or row.original is None or row.candidate is None:
                row.verdict = "not judged: " + ("no original answer recorded"
                                                if row.original is None else "no candidate answer")
                continue
            messages = ensemble_messages(question_of(pick.recorded.request.messages),
                                         [(ORIGINAL, row.original), (CANDIDATE, row.candidate)])
            hold = await self._reserve(f"{self.run.budget_scope}:{row.replay_request_id}:judge",
                                       judge_estimate(self.policy, judge, messages))
            if hold is None:
                row.verdict, stopped = "not judged: the replay budget is spent", True
                continue
            task = judge_task(self.policy, self.run, pick, judge, messages, hold)
            if isinstance(task, str):
                row.verdict = f"not judged: {task}"
                continue
            await self._publish([task])
            asked.append((row, task.request_id))
        await self._collect(consumer, [rid for _, rid in asked])
        for row, rid in asked:
            verdict = self.answers.get(rid)
            if verdict is None or verdict.status != "ok":
                row.verdict = "not judged: " + ("timeout" if verdict is None else "judge failed")
                row.judge_cost_usd = verdict.cost_usd if verdict else 0.0
                continue
            row.judge_cost_usd = verdict.cost_usd
            choice = read_choice(verdict.output, 2)  # 0-based: the candidates' order
            row.verdict = {0: "original", 1: "candidate"}.get(choice, "undecided")
        return stopped
