"""Counterfactual execution: ``modelbus replay --execute N --budget-usd X`` through the real
broker, workers, aggregator and simulator.

Traffic is recorded under an active policy with a tenant budget. The candidate moves
``summarize`` to a cascade whose first tier (the cheaper model) is checked by a judge model
and forbids region ``eu`` for ``chat``; the simulator scripts the judge to answer
``PASS 2``, which passes the cascade check and, read as the comparison's choice, prefers
candidate 2 (the candidate policy's answer). Checked: N requests are executed and answered
by the candidate's models, their answers sit beside the originals, the judged comparison
reports the verdict, the callers' reply topic gets nothing new, the spend lands on the
run's budget scope and not the tenant's, and the cap stops execution where it is spent.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from modelbus_audit.db import create_engine
from modelbus_audit.tables import audit_events as ev
from modelbus_cli.commands_replay import run_replay
from modelbus_runtime.budgets import BudgetLimit, Budgets
from modelbus_runtime.redis import build_redis
from modelbus_runtime.settings import RuntimeSettings
from modelbus_testing.simulator import simulate
from sqlalchemy import select

from tests.replay.test_replay_policy import (
    V1,
    replay_args,
    send_all,
    traffic,
    wait_audited,
)
from tests.upstream import RESPONSES, Upstream

pytestmark = pytest.mark.e2e

JUDGE = "gpt-4.1-mini"
ACTIVE = V1 + "budgets:\n  - {scope: tenant, limit_usd: 100}\n"
CANDIDATE = (V1.replace(
    "routes:", f"  judge: {{provider: openai, model: {JUDGE}, input_usd_per_mtok: 0.4, "
    "output_usd_per_mtok: 1.6}\nroutes:").replace(
    "summarize: {targets: [{model: big}]}",
    "summarize:\n    strategy: cascade\n    targets:\n"
    f"      - {{model: small, check: {{kind: judge, judge: {{provider: openai, model: {JUDGE}}}}}}}\n"
    "      - {model: big}")
    .replace("regions: [eu, us]", "regions: [us]"))
SERVED_UNDER_CANDIDATE = 7  # 5 summarize, 2 chat from us (3 chat from eu are refused)


async def committed(redis, limit: BudgetLimit) -> float:
    return await Budgets(redis).committed_usd(limit, datetime.now(UTC))


async def settled(redis, limit: BudgetLimit, spent: float) -> float:
    """The scope's committed spend once the aggregator settled the run's holds."""
    for _ in range(60):
        value = await committed(redis, limit)
        if abs(value - spent) < 1e-5:
            return value
        await asyncio.sleep(0.5)
    return value


async def audited_tasks(url: str, request_ids: set[str]) -> set[tuple[str, str]]:
    """(tenant, team) of the audited task rows of ``request_ids``, once each has one."""
    engine = create_engine(url)
    try:
        for _ in range(60):
            async with engine.connect() as conn:
                rows = (await conn.execute(select(ev.c.request_id, ev.c.tenant, ev.c.team).where(
                    ev.c.kind == "task", ev.c.request_id.in_(sorted(request_ids))))).all()
            if {r.request_id for r in rows} == request_ids:
                return {(r.tenant, r.team) for r in rows}
            await asyncio.sleep(0.5)
        raise AssertionError(f"audit has tasks of {sorted({r.request_id for r in rows})} only")
    finally:
        await engine.dispose()


@pytest.mark.parametrize("replay_stack", [ACTIVE], indirect=True)
async def test_execute_calls_the_candidate_beside_the_originals(replay_stack, tmp_path, capsys):
    stack, _, database = replay_stack
    tenant = f"cf-{uuid.uuid4().hex[:8]}"
    originals = await send_all(stack.bootstrap, traffic(tenant, ""))
    assert all(r["status"] == "ok" for r in originals.values()), originals
    await wait_audited(database, tenant, len(originals))
    simulate(stack, JUDGE, reply="PASS 2")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(CANDIDATE)
    redis = build_redis(RuntimeSettings(redis_url=stack.redis_url))
    tenant_budget = BudgetLimit(f"tenant:{tenant}", "day", 100)
    tenant_spend = await committed(redis, tenant_budget)
    assert tenant_spend > 0  # the recorded traffic was charged to the tenant

    def execute(run_id: str, n: int, budget: float, *extra: str):
        return run_replay(replay_args(
            "--policy", str(candidate), "--tenant", tenant, "--database-url", database,
            "--bootstrap", stack.bootstrap, "--redis-url", stack.redis_url,
            "--workdir", str(stack.workdir), "--execute", str(n), "--budget-usd", str(budget),
            "--run-id", run_id, "--json", *extra))

    async with Upstream(stack.bootstrap) as up:
        callers = await up.tail(RESPONSES)
        run = f"cf{uuid.uuid4().hex[:6]}"
        report = await execute(run, 4, 1.0, "--html", str(tmp_path / "report.html"))
        capsys.readouterr()
        replay_ids = {row["replay_request_id"] for row in report["counterfactual"]["rows"]}
        ours = set(originals) | replay_ids
        seen = await callers.collect(lambda r: (r.key or b"").decode() in ours, 100, timeout=5)
        await callers.stop()
    # the original callers' reply topic received nothing new (a copy of an answer they had
    # already, republished by the aggregator, is not new)
    new = [json.loads(r.value) for r in seen]
    assert [b for b in new if originals.get(b["request_id"]) != b] == []

    cf = report["counterfactual"]
    assert cf["reply_topic"] == f"modelbus.responses.replay-{run}"
    assert (cf["sampled"], cf["executed"], cf["answered"], cf["stopped_by_budget"]) == (4, 4, 4, 0)
    assert len(cf["rows"]) == 4
    for row in cf["rows"]:
        assert row["replay_request_id"] == f"replay-{run}-{row['request_id']}"
        assert row["tenant"] == tenant and row["status"] == "ok"
        then = originals[row["request_id"]]
        assert row["then_models"] == then["models"][:1]
        if "[EMAIL]" not in (row["original"] or ""):  # the audit redacted one of them
            assert row["original"] == then["output"]
        if row["task"] == "summarize":  # the cascade's first tier passed its judge
            assert row["answered_by"][0] == "openai/gpt-4o-mini"
            assert row["candidate"].startswith("[gpt-4o-mini] ")
            assert (row["judge"], row["verdict"]) == (f"openai/{JUDGE}", "candidate")
            assert row["judge_cost_usd"] > 0
        else:
            assert row["answered_by"] == ["openai/gpt-4.1"]
            assert row["candidate"].startswith("[gpt-4.1] ")
            assert (row["judge"], row["verdict"]) == (None, None)
    judged = sum(r["task"] == "summarize" for r in cf["rows"])
    assert cf["verdicts"] == ({"candidate": judged} if judged else {})
    assert cf["spent_usd"] > 0
    assert cf["spent_usd"] == pytest.approx(sum(r["cost_usd"] + r["judge_cost_usd"]
                                                for r in cf["rows"]), abs=1e-9)
    scope = BudgetLimit(f"replay:{run}", "month", 1.0)
    assert await settled(redis, scope, cf["spent_usd"]) == pytest.approx(cf["spent_usd"],
                                                                         abs=1e-5)
    assert await committed(redis, tenant_budget) == tenant_spend  # nothing on the tenant
    assert await audited_tasks(database, replay_ids) == {(tenant, "replay")}  # lineage
    page = (tmp_path / "report.html").read_text()
    assert "Counterfactual execution" in page and "[gpt-4o-mini]" in page

    # a cap below every request's estimate: nothing is executed
    starved = (await execute(f"cf{uuid.uuid4().hex[:6]}", SERVED_UNDER_CANDIDATE, 1e-9))
    capsys.readouterr()
    rows = starved["counterfactual"]["rows"]
    assert len(rows) == SERVED_UNDER_CANDIDATE
    assert [r["status"] for r in rows] == ["budget"] * SERVED_UNDER_CANDIDATE
    # a cap the first two estimates fit and the third does not: two executed, then it stops
    estimates = [r["estimated_usd"] for r in rows]
    cap = estimates[0] + estimates[1] + estimates[2] / 2
    capped = (await execute(f"cf{uuid.uuid4().hex[:6]}", SERVED_UNDER_CANDIDATE, cap,
                            "--concurrency", "8"))["counterfactual"]
    capsys.readouterr()
    assert [r["status"] for r in capped["rows"]] == ["ok", "ok"] + ["budget"] * (
        SERVED_UNDER_CANDIDATE - 2)
    assert capped["executed"] == 2 and capped["stopped_by_budget"] == 5
    assert await committed(redis, tenant_budget) == tenant_spend
    await redis.aclose()
