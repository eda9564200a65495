"""Counterfactual execution, the part that knows nothing of Kafka or Redis: which replayed
requests to execute, the tasks to send for each, the judge task, and the rows of the report.

A replay run (:class:`Run`) executes a sample of the requests the candidate policy would
serve (:class:`Sampler`). The tasks sent for one are the candidate decision's own tasks, as
the router's planner built them (:attr:`DryDecision.tasks`), renamed into the run so they
never touch the original request:

- request id ``replay-<run id>-<original id>`` (a digest of the original when too long),
  task event ids derived from it (``TaskEvent.make_id``), so the aggregator and the audit
  keep them apart and lineage shows them as counterfactual;
- reply topic ``modelbus.responses.replay-<run id>`` (never the caller's);
- caller team ``replay`` and user ``replay:<run id>`` under the original tenant (the
  decision, and so every data-class/region check, was made for the original caller);
- received now, with the route's deadline measured from now; no guard record;
- the budget hold the executor reserves on the run's own scope ``replay:<run id>``.

Where the candidate's plan names a judge (an ensemble judge, a check judge), the same judge
model is asked to compare the original answer with the candidate's (:func:`judge_task`),
after :func:`~modelbus_router.reachable.forbidden` confirms it may see the request.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelbus_schemas import Caller, ChatMessage, TaskEvent
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.plan import BudgetHold, ExecutionPlan
from modelbus_schemas.topics import RESPONSES_FAMILY_PREFIX

from modelbus_router.policy import Policy
from modelbus_router.reachable import Reach, catalog_entry, forbidden, plan_reach
from modelbus_router.replay.decide import SERVED, DryDecision
from modelbus_router.replay.recorded import Recorded
from modelbus_router.tokens import estimate_tokens, input_tokens_for

REPLAY_TEAM = "replay"
ID_ROOM = 110  # a replay request id stays under the contract's 128 with ":judge" added
JUDGE_SUFFIX = ":judge"
#: How the judge is asked: the ensemble judge's own prompt (the aggregator's), with the
#: original answer as candidate 1 and the candidate policy's as candidate 2.
ORIGINAL, CANDIDATE = 1, 2
JUDGE_OUTPUT_TOKENS = 16


@dataclass(frozen=True)
class Run:
    run_id: str
    budget_usd: float
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def reply_topic(self) -> str:
        return f"{RESPONSES_FAMILY_PREFIX}replay-{self.run_id}"

    @property
    def budget_scope(self) -> str:
        return f"replay:{self.run_id}"

    def request_id(self, original: str) -> str:
        rid = f"replay-{self.run_id}-{original}"
        if len(rid) > ID_ROOM:
            rid = f"replay-{self.run_id}-{hashlib.sha256(original.encode()).hexdigest()[:32]}"
        return rid


@dataclass(frozen=True)
class Pick:
    """One replayed request chosen for execution, with the candidate's decision for it."""

    index: int  # its position in the replay (the report lists picks in replay order)
    recorded: Recorded
    decision: DryDecision


class Sampler:
    """An even sample of ``size`` requests the candidate serves (reservoir sampling, seeded
    by the run id so a run is repeatable); requests whose text retention purged are not
    executable (their text is filler) and only counted."""

    def __init__(self, size: int, seed: str) -> None:
        self.size, self.random = size, random.Random(seed)
        self.seen = 0
        self.purged = 0
        self.picks: list[Pick] = []

    def offer(self, recorded: Recorded, decision: DryDecision) -> None:
        if decision.outcome != SERVED or not decision.tasks:
            return
        if recorded.purged:
            self.purged += 1
            return
        pick = Pick(self.seen, recorded, decision)
        self.seen += 1
        if len(self.picks) < self.size:
            self.picks.append(pick)
        else:
            slot = self.random.randrange(self.seen)
            if slot < self.size:
                self.picks[slot] = pick

    def sample(self) -> list[Pick]:
        return sorted(self.picks, key=lambda p: p.index)


def _renamed(task: TaskEvent, run: Run, rid: str, now: datetime,
             hold: BudgetHold | None) -> TaskEvent:
    caller = Caller(tenant=task.caller.tenant, team=REPLAY_TEAM, user=f"replay:{run.run_id}")
    deadline = None if task.deadline_at is None else now + (task.deadline_at - task.received_at)
    return task.model_copy(update={
        "event_id": TaskEvent.make_id(scoped_id(caller.tenant, rid), task.part_id),
        "request_id": rid, "caller": caller, "reply_to": run.reply_topic,
        "received_at": now, "deadline_at": deadline, "budget_hold": hold,
        "plan": task.plan.model_copy(update={"guard_record": False}),
    })


def tasks_for(run: Run, pick: Pick, hold: BudgetHold | None,
              now: datetime | None = None) -> list[TaskEvent]:
    """The candidate decision's tasks for ``pick``, renamed into the run."""
    now = now or datetime.now(UTC)
    rid = run.request_id(pick.recorded.request.request_id)
    return [_renamed(t, run, rid, now, hold) for t in pick.decision.tasks]


def judge_of(pick: Pick) -> Reach | None:
    """The first judge the candidate's plan names (ensemble judge, check judge), if any."""
    return next((r for r in plan_reach(pick.decision.tasks) if "judge" in r.role), None)


def judge_estimate(policy: Policy, judge: Reach, messages: list[ChatMessage]) -> float:
    """What the judge call is reserved at: the prompt priced at the judge's catalog prices,
    with a short answer (a number)."""
    entry = catalog_entry(policy.catalog, judge.provider, judge.model)
    if entry is None:
        return 0.0
    tokens = input_tokens_for(judge.provider, estimate_tokens(messages))
    return entry.cost_usd(tokens, JUDGE_OUTPUT_TOKENS)


def judge_task(policy: Policy, run: Run, pick: Pick, judge: Reach, messages: list[ChatMessage],
               hold: BudgetHold | None, now: datetime | None = None) -> TaskEvent | str:
    """A single-model task asking ``judge`` to compare the two answers (``messages``, the
    judge prompt), or why it may not: the data-class, region and caller rules of the policy,
    for the original request, as for every model the plan reaches."""
    first = pick.decision.tasks[0]
    task = _renamed(first, run, run.request_id(pick.recorded.request.request_id) + JUDGE_SUFFIX,
                    now or datetime.now(UTC), hold)
    task = task.model_copy(update={
        "event_id": TaskEvent.make_id(scoped_id(task.caller.tenant, task.request_id), 0),
        "part_id": 0, "parts_total": 1, "provider": judge.provider, "model": judge.model,
        "messages": messages, "context": [], "input": None, "retry": None, "fallbacks": [],
        "fallback_on": None, "stream": False,
        "plan": ExecutionPlan(guard_record=False),
    })
    refused = forbidden(policy, pick.recorded.request, [task])
    if refused:
        return "; ".join(f"{r.ref}: {why}" for r, why in refused)
    return task


@dataclass
class Executed:
    """One request executed under the candidate, beside what was answered then."""

    request_id: str
    replay_request_id: str
    tenant: str
    team: str
    task: str
    then_models: list[str]
    now_models: list[str]
    original: str | None  # the answer then, as the audit holds it (None: none recorded)
    estimated_usd: float  # what the candidate's plan reserves on the run's budget
    status: str = "pending"  # ok | error | timeout | budget (not executed: the cap was spent)
    candidate: str | None = None
    answered_by: list[str] = field(default_factory=list)
    cost_usd: float = 0.0
    error: str | None = None
    judge: str | None = None  # provider/model
    verdict: str | None = None  # original | candidate | undecided | not judged: <why>
    judge_cost_usd: float = 0.0

    @classmethod
    def of(cls, run: Run, pick: Pick, original: str | None) -> Executed:
        request = pick.recorded.request
        return cls(request.request_id, run.request_id(request.request_id),
                   request.caller.tenant, pick.recorded.team, request.task,
                   list(pick.recorded.then.selected), pick.decision.selected, original,
                   pick.decision.estimated_cost_usd)


@dataclass
class Counterfactual:
    """The counterfactual section of the report."""

    run: Run
    sampled: int = 0
    purged_not_executable: int = 0
    rows: list[Executed] = field(default_factory=list)
    rejected_records: int = 0  # on the reply topic without a valid aggregator/router signature

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    @property
    def spent_usd(self) -> float:
        return round(sum(r.cost_usd + r.judge_cost_usd for r in self.rows), 10)

    def as_json(self) -> dict[str, Any]:
        verdicts: dict[str, int] = {}
        for row in self.rows:
            if row.judge:
                verdicts[row.verdict or "undecided"] = verdicts.get(row.verdict or "undecided",
                                                                    0) + 1
        return {
            "run_id": self.run.run_id, "reply_topic": self.run.reply_topic,
            "budget_scope": self.run.budget_scope, "budget_usd": self.run.budget_usd,
            "sampled": self.sampled, "purged_not_executable": self.purged_not_executable,
            "executed": sum(r.status in ("ok", "error", "timeout") for r in self.rows),
            "answered": self.count("ok"), "errors": self.count("error"),
            "timeouts": self.count("timeout"), "stopped_by_budget": self.count("budget"),
            "spent_usd": self.spent_usd, "verdicts": verdicts,
            "rejected_records": self.rejected_records,
            "rows": [asdict(r) for r in self.rows],
        }
