"""What an answer becomes in the result: stop sequences beyond the provider's limit enforced
on the text, JSON answers parsed (``output_invalid`` when they are not JSON, usage kept),
tool calls carried with finish reason ``tool_calls``."""

from __future__ import annotations

import pytest
from modelbus_adapter_worker.adapters import Completion
from modelbus_adapter_worker.answer import cut_at_stops
from modelbus_adapter_worker.executor import TargetRun
from modelbus_adapter_worker.outcome import result_of
from modelbus_schemas import ErrorCode
from modelbus_schemas.content import ToolCall
from worker_wire_helpers import JSON_SCHEMA_FORMAT, task


def _result(t, text, finish="stop", **kw):
    return result_of(t, TargetRun("ok", completion=Completion(text, finish, 100, 50, "m", **kw)))


def test_worker_stop_cut_at_the_earliest_of_any_sequence():
    assert cut_at_stops("one two THREE four END", ["END", "THREE", "x"]) == "one two "
    assert cut_at_stops("nothing here", ["END"]) is None
    assert cut_at_stops("a", []) is None


def test_worker_stops_beyond_the_providers_limit_are_enforced_on_the_output():
    t = task(params={"stop": ["s1", "s2", "s3", "s4", "s5"]})  # OpenAI takes 4
    result = _result(t, "keep this s5 and not this", finish="length")
    assert (result.text, result.finish_reason) == ("keep this ", "stop")
    untouched = _result(t, "no stop here", finish="length")
    assert (untouched.text, untouched.finish_reason) == ("no stop here", "length")


def test_worker_json_answer_is_parsed():
    t = task(params={"response_format": JSON_SCHEMA_FORMAT})
    assert _result(t, '{"n": 4}').parsed == {"n": 4}
    assert _result(t, '```json\n{"n": 5}\n```').parsed == {"n": 5}
    assert _result(task(), '{"n": 4}').parsed is None  # no JSON was asked for


def test_worker_json_answer_that_is_not_json_is_output_invalid_with_its_usage():
    t = task(params={"response_format": {"type": "json_object"}})
    result = _result(t, '{"n": 4', finish="length")
    assert result.status == "error" and result.error.code == ErrorCode.OUTPUT_INVALID
    assert "token limit" in result.error.message and not result.error.retryable
    assert result.usage.output_tokens == 50
    assert result.cost_usd == pytest.approx((100 * 2.5 + 50 * 10) / 1e6)  # paid all the same


def test_worker_tool_calls_reach_the_result():
    t = task(params={"response_format": {"type": "json_object"},
                     "tools": [{"name": "f", "parameters": {"type": "object"}}]})
    calls = [ToolCall(id="c1", name="f", arguments='{"a":1}')]
    result = _result(t, "", finish="tool_calls", tool_calls=calls)
    assert result.status == "ok" and result.finish_reason == "tool_calls"
    assert result.tool_calls == calls and result.parsed is None
