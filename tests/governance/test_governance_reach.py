"""Restricted data never reaches a hosted judge, through the broker: the issue's two leak
routes — an ensemble judged by ``openai/gpt-4o`` and a cascade checked by a judge on
``anthropic/claude-sonnet-4-5``, both over self-hosted targets — with real router, workers,
aggregator and the provider simulator (whose call log is the evidence).

* the real router refuses to start on that policy, naming each route and judge model;
* a router whose load check is off (``router_without_load_check``: a check that missed a
  shape) still answers a restricted prompt on either route with ``no_eligible_model`` naming
  the judge, and the simulator saw zero calls to any model — while an internal prompt on
  the same routes does reach both judges, so the zero is not an accident of the setup.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from modelbus_cli.stack import Stack
from modelbus_testing.simulator import provider_calls

from tests.upstream import RESPONSES, Upstream, request_json

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HOSTED = ("gpt-4o", "claude-sonnet-4-5")
LEAK_POLICY = """
catalog:
  gpt-4o: {provider: openai, model: gpt-4o}
  claude-sonnet: {provider: anthropic, model: claude-sonnet-4-5}
  llama: {provider: selfhosted, model: llama-3.1-8b}
  qwen: {provider: selfhosted, model: qwen2.5-32b}
routes:
  ensemble:
    strategy: ensemble
    ensemble: {strategy: judge, judge: {provider: openai, model: gpt-4o}}
    targets: [{model: llama}, {model: qwen}]
  cascade:
    strategy: cascade
    targets:
      - {model: llama, check: {kind: judge, judge: {provider: anthropic,
                                                   model: claude-sonnet-4-5}}}
      - {model: qwen}
"""


@pytest.fixture(scope="module")
def gov_stack(tmp_path_factory, kafka_bootstrap, redis_url):
    workdir = tmp_path_factory.mktemp(f"governance-{uuid.uuid4().hex[:6]}")
    (workdir / "policy.yaml").write_text(LEAK_POLICY)
    stack = Stack(workdir, providers=("openai", "anthropic", "selfhosted"))
    stack.bootstrap, stack.redis_url, stack.database_url = kafka_bootstrap, redis_url, "unused"
    try:
        stack.start_infra()
        stack.start_simulator()
        for provider in stack.providers:
            stack.start_service(f"worker-{provider}", "modelbus_adapter_worker.app",
                                stack.worker_env(provider))
        stack.start_service("aggregator", "modelbus_aggregator.app",
                            {"MODELBUS_AGGREGATOR_GROUP_ID": f"gov-agg-{uuid.uuid4().hex[:6]}"})
        stack.wait_ready()
        yield stack
    finally:
        stack.stop()


def test_the_router_refuses_to_start_on_the_leak_policy_naming_routes_and_judges(gov_stack):
    child = gov_stack.start_service("router-strict", "modelbus_router.app",
                                    {"MODELBUS_POLICY_PATH": str(gov_stack.workdir / "policy.yaml")})
    assert child.proc.wait(timeout=60) == 2
    log = child.log_path.read_text()
    assert "refusing to start" in log
    assert "routes.ensemble (default): the ensemble judge openai/gpt-4o" in log
    assert "routes.cascade (default): the check judge of llama anthropic/claude-sonnet-4-5" in log
    del gov_stack.health["router-strict"]


async def _ask(stack, bodies: list[dict]) -> dict[str, dict]:
    async with Upstream(stack.bootstrap) as up:
        responses = await up.tail(RESPONSES)
        ids = {b["request_id"] for b in bodies}
        for body in bodies:
            await up.send(body)
        got = await responses.collect(lambda r: r.key.decode() in ids, len(ids), timeout=60)
        await responses.stop()
    return {r.key.decode(): json.loads(r.value) for r in got}


async def test_a_restricted_prompt_reaches_no_model_and_gets_a_clear_error(gov_stack):
    gov_stack.start_service("router", "tests.governance.router_without_load_check", {
        "MODELBUS_POLICY_PATH": str(gov_stack.workdir / "policy.yaml"),
        "PYTHONPATH": str(ROOT)})
    gov_stack.wait_ready(names=["router"])
    run = uuid.uuid4().hex[:8]
    before = {m: provider_calls(gov_stack, m) for m in (*HOSTED, "llama-3.1-8b", "qwen2.5-32b")}
    restricted = [request_json(f"gov-{run}-{task}", task=task, data_class="restricted",
                               text="Merger terms: ACME buys Globex at $41 per share.")
                  for task in ("ensemble", "cascade")]
    answers = await _ask(gov_stack, restricted)
    assert len(answers) == 2
    for task, judge in (("ensemble", "openai/gpt-4o (ensemble judge)"),
                        ("cascade", "anthropic/claude-sonnet-4-5 (cascade check judge (tier 0))")):
        body = answers[f"gov-{run}-{task}"]
        assert body["status"] == "error" and body["error"]["code"] == "no_eligible_model", body
        assert judge in body["error"]["message"]
        assert "restricted data may not reach a hosted model" in body["error"]["message"]
    after = {m: provider_calls(gov_stack, m) for m in before}
    assert after == before, "nothing was sent anywhere: the plan was refused before dispatch"

    internal = [request_json(f"gov-{run}-{task}-internal", task=task, data_class="internal")
                for task in ("ensemble", "cascade")]
    answers = await _ask(gov_stack, internal)
    assert {b["status"] for b in answers.values()} <= {"ok", "partial"}, answers
    assert all(provider_calls(gov_stack, m) > before[m] for m in HOSTED), (
        "an internal prompt does reach both judges: the setup would have shown a leak")
