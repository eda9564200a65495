"""Worker processes on the real broker, against the simulator over real HTTP: fallback to
the second provider when the first is down, a terminal error that does not fall back, a
redelivered task that makes no second provider call, two tenants that picked the same
request id each getting their own result, and a planted API key that never appears in logs
or events."""

from __future__ import annotations

import asyncio

import pytest
from modelbus_schemas import ExecutionPlan, ResultEvent, RetrySpec, Target, TaskEvent
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import RESULTS

from tests.upstream import TailReader
from tests.worker.worker_helpers import TaskPublisher, bodies, make_task, start_workers, unique

PLANTED_OPENAI_KEY = "plantedKEY-7f3a9c1e5b2d4068"
PLANTED_ANTHROPIC_KEY = "plantedKEY-anthropic-91c0ffee"


@pytest.fixture(scope="module")
def workers(tmp_path_factory, worker_stack):
    stack = start_workers(tmp_path_factory.mktemp("flow-workers"), worker_stack, {
        "worker-openai": {"MODELBUS_PROVIDER": "openai", "MODELBUS_API_KEY": PLANTED_OPENAI_KEY,
                          "MODELBUS_LOG_LEVEL": "DEBUG", "MODELBUS_BASE_DELAY_MS": "20"},
        "worker-anthropic": {"MODELBUS_PROVIDER": "anthropic",
                             "MODELBUS_API_KEY": PLANTED_ANTHROPIC_KEY,
                             "MODELBUS_LOG_LEVEL": "DEBUG"},
    })
    yield stack
    stack.stop()


async def _results(bootstrap: str, tasks: list[TaskEvent], count: int, *, send_twice=False):
    results = TailReader(bootstrap, RESULTS)
    await results.start()
    ids = {t.request_id for t in tasks}
    async with TaskPublisher(bootstrap) as publisher:
        for task in tasks:
            await publisher.send(task)
            if send_twice:
                await publisher.send(task)
    got = await results.collect(lambda r: r.key.decode() in ids, count, timeout=60)
    await results.stop()
    return bodies(got)


async def test_worker_falls_back_to_the_second_provider_when_the_first_is_down(
        workers, sim):
    down, backup = unique("gpt-down"), unique("claude-backup")
    sim.behave(down, fail_first=1000, failure={"kind": "status", "status": 503})
    sim.behave(backup, latency_ms=5)
    task = make_task("openai", down, retry=RetrySpec(max_attempts=2, base_delay_ms=10),
                     fallbacks=[Target(provider="anthropic", model=backup)], attempt_budget=5,
                     plan=ExecutionPlan(mode="fallback"))
    [result] = await _results(workers.bootstrap, [task], 1)
    assert result["status"] == "ok", result
    assert (result["provider"], result["model"]) == ("anthropic", backup)
    assert result["text"].startswith(f"[{backup}]")
    assert [(a["provider"], a["status_code"]) for a in result["attempts"]] == [
        ("openai", 503), ("openai", 503), ("anthropic", 200)]
    assert [a["number"] for a in result["attempts"]] == [1, 2, 3]
    assert result["event_id"] == ResultEvent.make_id(scoped_id("default", task.request_id), 0)
    assert sim.calls(down) == 2 and sim.calls(backup) == 1


async def test_worker_terminal_error_does_not_fall_back(workers, sim):
    broken, backup = unique("gpt-400"), unique("claude-unused")
    sim.behave(broken, fail_first=1000, failure={"kind": "status", "status": 400})
    task = make_task("openai", broken, fallbacks=[Target(provider="anthropic", model=backup)])
    [result] = await _results(workers.bootstrap, [task], 1)
    assert result["status"] == "error" and result["provider"] == "openai"
    assert result["error"]["code"] == "provider_terminal"
    assert sim.calls(broken) == 1 and sim.calls(backup) == 0


async def test_worker_redelivered_task_makes_no_second_provider_call(workers, sim):
    model = unique("gpt-once")
    sim.behave(model, latency_ms=20)
    task = make_task("openai", model)
    first, second = await _results(workers.bootstrap, [task], 2, send_twice=True)
    assert first == second, "the redelivery republishes the kept result"
    assert first["status"] == "ok"
    await asyncio.sleep(0.5)
    assert sim.calls(model) == 1


async def test_worker_two_tenants_with_one_request_id_each_get_their_own_result(workers, sim):
    model, rid = unique("gpt-tenants"), unique("xt")
    sim.behave(model, latency_ms=300)  # both tenants' calls are in flight at once
    tasks = [make_task("openai", model, request_id=rid, tenant=tenant, text=f"{word} from {tenant}")
             for tenant, word in (("t-one", "alpha"), ("t-two", "bravo"))]
    got = await _results(workers.bootstrap, tasks, 4, send_twice=True)
    by_tenant: dict[str, list[dict]] = {}
    for result in got:
        by_tenant.setdefault(result["tenant"], []).append(result)
    assert sorted(by_tenant) == ["t-one", "t-two"], got
    for tenant, word, other in (("t-one", "alpha", "bravo"), ("t-two", "bravo", "alpha")):
        first, again = by_tenant[tenant]
        assert first == again, "a redelivery republishes that tenant's own kept result"
        assert word in first["text"] and other not in first["text"], first["text"]
        assert first["event_id"] == ResultEvent.make_id(scoped_id(tenant, rid), 0)
    await asyncio.sleep(0.5)
    assert sim.calls(model) == 2, "one provider call per tenant, none for the redeliveries"


async def test_worker_planted_keys_never_reach_logs_or_events(workers, sim):
    ok, echo, down = unique("gpt-ok"), unique("gpt-echo"), unique("gpt-dead")
    sim.behave(ok, latency_ms=5)
    # A provider that echoes the caller's key in its error message (some do, partially).
    sim.behave(echo, fail_first=1000, failure={
        "kind": "status", "status": 401,
        "message": f"Incorrect API key provided: {PLANTED_OPENAI_KEY}"})
    sim.behave(down, fail_first=1000, failure={"kind": "status", "status": 500})
    tasks = [make_task("openai", m, retry=RetrySpec(max_attempts=2, base_delay_ms=5),
                       fallbacks=[Target(provider="anthropic", model=unique("claude-x"))])
             for m in (ok, echo, down)]
    results = await _results(workers.bootstrap, tasks, 3)
    assert len(results) == 3
    assert any(r["status"] == "error" and "Incorrect API key" in r["error"]["message"]
               for r in results), "the echoed error reached the result, scrubbed"
    for name in ("worker-openai", "worker-anthropic"):
        log = (workers.workdir / "logs" / f"{name}.log").read_text()
        if name == "worker-openai":
            assert "Incorrect API key provided: ***" in log, "the echo was logged, masked"
        assert PLANTED_OPENAI_KEY not in log and PLANTED_ANTHROPIC_KEY not in log
    for result in results:
        text = str(result)
        assert PLANTED_OPENAI_KEY not in text and PLANTED_ANTHROPIC_KEY not in text
