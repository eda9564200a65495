"""Tool calls, JSON answers and vectors through fan-in: responses carry them, ensembles
compare them as canonical JSON, cascade checks validate them, output guards read them."""

from __future__ import annotations

import uuid
from datetime import timedelta

from modelbus_aggregator.checks import run_check
from modelbus_aggregator.engine import Aggregator
from modelbus_aggregator.output_guards import OutputGuardian
from modelbus_aggregator.responses import single_response
from modelbus_aggregator.state import FanInStore
from modelbus_aggregator.strategies import majority
from modelbus_router.guardrails.handoff import GuardRecords, build_record
from modelbus_router.guardrails.spec import OutputGuards
from modelbus_schemas import CheckSpec, GenerationParams, ToolCall
from modelbus_schemas.identity import scoped_id

from services.aggregator.tests.aggregator_factories import T0, make_result, make_task
from services.aggregator.tests.aggregator_factories import RecordingOutbox as Outbox

WEATHER = {"name": "get_weather", "parameters": {
    "type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}
ANSWER = {"type": "object", "required": ["sky"], "properties": {"sky": {"type": "string"}}}


def call(args: str, cid: str = "c1", name: str = "get_weather") -> ToolCall:
    return ToolCall(id=cid, name=name, arguments=args)


def calling(*calls: ToolCall, **kw):
    """A result whose answer is only tool calls (no text), as a worker reports it."""
    return make_result(tool_calls=list(calls), **kw).model_copy(update={"text": None})


def with_params(**params):
    return make_task(params=GenerationParams.model_validate(params))


def test_a_tool_call_answer_reaches_the_response_with_finish_reason_tool_calls():
    result = calling(call('{"city":"Paris"}'), finish_reason="tool_calls")
    response = single_response(result)
    assert response.status == "ok" and response.output is None
    assert response.tool_calls[0].name == "get_weather"
    assert response.finish_reason == "tool_calls"


def test_json_answers_and_vectors_reach_the_response():
    parsed = make_result(text='{"sky": "clear"}', parsed={"sky": "clear"})
    assert single_response(parsed).parsed == {"sky": "clear"}
    vectors = make_result(text=None, embeddings=[[0.1, 0.2], [0.3, 0.4]])
    response = single_response(vectors)
    assert response.embeddings == [[0.1, 0.2], [0.3, 0.4]] and response.status == "ok"


def test_majority_counts_the_same_calls_in_any_order_and_spacing_as_one_answer():
    a = calling(call('{"city": "Paris"}', "x1"), part=0)
    b = calling(call('{"city":"Oslo"}', "y1"), part=1)
    c = calling(call('{ "city" : "Oslo" }', "z9"), part=2)
    pick = majority([a, b, c])
    assert [r.part_id for r in pick.winners] == [1, 2] and pick.output is None


def test_majority_compares_json_answers_by_value():
    a = make_result(part=0, text='{"a": 1, "b": 2}', parsed={"a": 1, "b": 2})
    b = make_result(part=1, text='{"b":2,"a":1}', parsed={"b": 2, "a": 1})
    c = make_result(part=2, text='{"a": 3}', parsed={"a": 3})
    assert [r.part_id for r in majority([c, a, b]).winners] == [0, 1]


def test_a_json_schema_check_uses_the_requests_own_schema_when_the_policy_gives_none():
    origin = with_params(response_format={"type": "json_schema", "json_schema": {
        "name": "answer", "schema": ANSWER}})
    check = CheckSpec(kind="json_schema")
    good = make_result(text='{"sky": "clear"}', parsed={"sky": "clear"}, origin=origin)
    bad = make_result(text='{"rain": 1}', parsed={"rain": 1}, origin=origin)
    assert run_check(check, good).passed
    outcome = run_check(check, bad)
    assert not outcome.passed and "sky" in outcome.reason


def test_a_json_schema_check_validates_tool_arguments_against_the_offered_tool():
    origin = with_params(tools=[WEATHER])
    check = CheckSpec(kind="json_schema")
    ok = calling(call('{"city": "Paris"}'), origin=origin)
    missing = calling(call('{"town": "Paris"}'), origin=origin)
    unknown = calling(call("{}", name="launch"), origin=origin)
    broken = calling(call("{city"), origin=origin)
    assert run_check(check, ok).passed
    assert "city" in run_check(check, missing).reason
    assert "not offered" in run_check(check, unknown).reason
    assert "not JSON" in run_check(check, broken).reason


async def test_a_denied_term_in_tool_arguments_never_reaches_the_caller(redis_client, prefix):
    rid = f"og-{uuid.uuid4().hex[:8]}"
    guards = OutputGuards.model_validate({"deny_list": {"terms": ["project-x"]}})
    await GuardRecords(redis_client, ttl_s=600).save(
        scoped_id("default", rid), build_record(guards, [], {}, make_task(rid)))
    outbox = Outbox()
    agg = Aggregator(FanInStore(redis_client, prefix, 10_000), outbox,
                     guards=OutputGuardian(redis_client),
                     clock=lambda: T0 + timedelta(seconds=1))
    await agg.on_result(calling(call('{"city": "Project-X base"}'), rid=rid, origin=None))
    [response] = outbox.responses
    assert response.status == "error" and response.error.code == "output_invalid"
    assert response.tool_calls is None or "Project-X" not in str(response.tool_calls)
