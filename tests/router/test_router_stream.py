"""Which requests stream (issue 20): the routing engine against the real Redis, no broker.

A request with ``stream`` gets ``plan.stream`` and a streaming task on single and fallback
routes, ``plan.stream`` only on a chain of several stages (the aggregator marks the last
stage), nothing on cascades and ensembles, and nothing where the answer is checked whole
before the caller may see it (output guards that deny or rewrite, a JSON response format,
placeholders restored in the final response); the decision then says why. Replay (the
router's state-free ``decide``) still serves such requests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from modelbus_router.engine import RouterEngine
from modelbus_router.policy import parse_policy
from modelbus_router.reload import PolicySource
from modelbus_router.replay.decide import SERVED, decide
from modelbus_schemas import RequestEvent, ResponseEvent

POLICY = """
catalog:
  a: {provider: openai, model: model-a}
  b: {provider: anthropic, model: model-b}
  vectors: {provider: openai, model: text-embedding-3-small}
routes:
  plain: {targets: [{model: a}]}
  embed: {targets: [{model: vectors}]}
  safe: {strategy: fallback, targets: [{model: a}, {model: b}]}
  tiers:
    strategy: cascade
    targets: [{model: a, check: {kind: min_length, min_chars: 5}}, {model: b}]
  vote: {strategy: ensemble, targets: [{model: a}, {model: b}]}
  steps:
    strategy: chain
    stages: [{name: draft, model: a}, {name: polish, model: b}]
  one_step:
    strategy: chain
    stages: [{name: only, model: a}]
  denied_words:
    targets: [{model: a}]
    guardrails: {output: {deny_list: {terms: ["forbidden"]}}}
  json_checked:
    strategy: fallback
    targets: [{model: a}, {model: b}]
    guardrails: {output: {json_schema: {schema: {type: object}}}}
  chain_guarded:
    strategy: chain
    stages: [{name: draft, model: a}, {name: polish, model: b}]
    guardrails: {output: {pii: {mode: mutate}}}
  flag_only:
    targets: [{model: a}]
    guardrails: {output: {regex: [{name: ticket, pattern: "T-[0-9]+", mode: flag}]}}
  restoring:
    targets: [{model: a}]
    guardrails: {input: {pii: {restore: true}}}
"""


@pytest.fixture
def engine(engine_on):
    return engine_on(POLICY)


def _request(task: str, stream: bool = True, content: str = "hello", **kw) -> RequestEvent:
    return RequestEvent(request_id=f"r-{uuid.uuid4().hex[:12]}", task=task, stream=stream,
                        messages=[{"role": "user", "content": content}],
                        caller={"tenant": "t-stream", "team": "team-stream"}, **kw)


def _why(task) -> str | None:
    found = [f for f in task.decision.guardrails if f.guard == "stream"]
    return found[0].detail if found else None


@pytest.mark.parametrize("route", ["plain", "safe", "flag_only"])
async def test_single_and_fallback_tasks_stream(engine, route):
    [task] = (await engine.route(_request(route))).tasks
    assert task.plan.stream is True and task.stream is True
    assert _why(task) is None


async def test_a_fallback_plan_streams_with_its_fallbacks_on_the_task(engine):
    [task] = (await engine.route(_request("safe"))).tasks
    assert task.plan.mode == "fallback" and [f.model for f in task.fallbacks] == ["model-b"]
    assert task.stream is True


async def test_a_request_that_does_not_ask_does_not_stream(engine):
    for route in ("plain", "safe", "steps"):
        [task] = (await engine.route(_request(route, stream=False))).tasks
        assert task.plan.stream is False and task.stream is False and _why(task) is None


async def test_a_chain_streams_its_plan_and_leaves_the_last_stage_to_the_aggregator(engine):
    [first] = (await engine.route(_request("steps"))).tasks
    assert first.plan.mode == "chain" and first.plan.stream is True
    assert first.stream is False  # stage 0 of two: its output is the next stage's input
    [only] = (await engine.route(_request("one_step"))).tasks
    assert only.plan.stream is True and only.stream is True  # the only stage is the last


@pytest.mark.parametrize("route,mode", [("tiers", "cascade"), ("vote", "ensemble")])
async def test_cascades_and_ensembles_never_stream_and_say_why(engine, route, mode):
    tasks = (await engine.route(_request(route))).tasks
    assert tasks and all(t.plan.mode == mode for t in tasks)
    assert all(t.plan.stream is False and t.stream is False for t in tasks)
    assert all(_why(t).startswith(f"not streamed: {mode} plans") for t in tasks)


@pytest.mark.parametrize("route,reason", [
    ("denied_words", "output guard deny_list (validate)"),
    ("json_checked", "output guard json_schema (validate)"),
    ("chain_guarded", "output guard pii (mutate)"),
])
async def test_routes_whose_output_is_checked_whole_do_not_stream(engine, route, reason):
    [task] = (await engine.route(_request(route))).tasks
    assert task.plan.stream is False and task.stream is False
    assert reason in _why(task)


@pytest.mark.parametrize("fmt", [
    {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}},
    {"type": "json_object"},
])
async def test_a_json_response_format_does_not_stream(engine, fmt):
    [task] = (await engine.route(_request("plain", params={"response_format": fmt}))).tasks
    assert task.plan.stream is False and task.stream is False
    assert f"response_format {fmt['type']}" in _why(task)


async def test_an_embed_request_does_not_stream(engine):
    request = RequestEvent(request_id=f"r-{uuid.uuid4().hex[:12]}", task="embed", stream=True,
                           operation="embed", input=["a sentence"],
                           caller={"tenant": "t-stream", "team": "team-stream"})
    [task] = (await engine.route(request)).tasks
    assert task.plan.stream is False and task.stream is False
    assert "embed answers are vectors" in _why(task)


async def test_restored_placeholders_hold_the_stream_back_only_when_there_are_some(engine):
    [task] = (await engine.route(_request("restoring", content="mail ada@example.com"))).tasks
    assert task.plan.stream is False and "placeholders restored" in _why(task)
    [clean] = (await engine.route(_request("restoring", content="no personal data"))).tasks
    assert clean.plan.stream is True and clean.stream is True


async def test_a_cache_hit_carries_no_stream_events_or_ttft_of_the_cached_answer(tmp_path,
                                                                               redis_url):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("plain: {targets: [{model: a}]}",
                                   "plain: {targets: [{model: a}], cache: {ttl_s: 60}}"))
    client = aioredis.Redis.from_url(redis_url)
    try:
        engine = RouterEngine(PolicySource(path), client)
        content = f"cached {uuid.uuid4().hex}"
        first = await engine.route(_request("plain", content=content))
        [task] = first.tasks
        cached = ResponseEvent(event_id="x", request_id=task.request_id, tenant="t-stream",
                               status="ok", output="hi", ttft_ms=12.5, stream_events=4,
                               created_at=datetime.now(UTC))
        await engine.cache.put(task.decision.cache_key, cached)
        hit = (await engine.route(_request("plain", content=content))).response
        assert hit.cache_hit is True and hit.output == "hi"
        assert hit.stream_events == 0 and hit.ttft_ms is None
    finally:
        await client.aclose()


def test_replay_still_decides_streaming_requests_without_state():
    policy = parse_policy(POLICY)
    for route in ("plain", "steps", "denied_words", "vote"):
        dry = decide(policy, _request(route))
        assert dry.outcome == SERVED and dry.decision.route == route
