"""OpenAI wire format: request parsing, completion body, SSE frames, error mapping, keys."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from modelbus_gateway.auth import ApiKeyEntry, ApiKeys, bearer_token, hash_key
from modelbus_gateway.errors import GatewayError, from_error_info, retry_after_s
from modelbus_gateway.openai_stream import stream_frames
from modelbus_gateway.openai_wire import completion_body, parse_chat_request
from modelbus_schemas import ErrorCode, ErrorInfo, ResponseEvent, Usage


def _response(text: str = "hello there", finish: str | None = "stop") -> ResponseEvent:
    return ResponseEvent(event_id="r:response", request_id="r", status="ok", output=text,
                         finish_reason=finish, models=["openai/gpt-4o-mini"],
                         usage=Usage(input_tokens=3, output_tokens=2),
                         created_at=datetime.now(UTC))


def test_parse_maps_params_roles_and_text_parts():
    call = parse_chat_request(orjson.dumps({
        "model": "summarize", "max_completion_tokens": 20, "temperature": 0.5, "stop": "END",
        "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "developer", "content": "be brief"},
                     {"role": "user", "content": [{"type": "text", "text": "a "},
                                                  {"type": "text", "text": "b"}]}],
    }))
    assert call.task == "summarize" and call.stream and call.include_usage
    assert [(m.role, m.content) for m in call.messages] == [("system", "be brief"),
                                                            ("user", "a b")]
    assert call.params.max_tokens == 20 and call.params.stop == ["END"]


@pytest.mark.parametrize(("body", "param"), [
    (b"{nope", None),
    (orjson.dumps({"messages": [{"role": "user", "content": "x"}]}), "model"),
    (orjson.dumps({"model": "t", "messages": []}), "messages"),
    (orjson.dumps({"model": "t", "messages": [{"role": "function", "content": "x"}]}),
     "messages[0].role"),
    (orjson.dumps({"model": "t", "messages": [{"role": "tool", "content": "x"}]}),
     "messages[0]"),
    (orjson.dumps({"model": "t", "n": 2, "messages": [{"role": "user", "content": "x"}]}), "n"),
    (orjson.dumps({"model": "t", "temperature": 9,
                   "messages": [{"role": "user", "content": "x"}]}), "temperature"),
    (orjson.dumps({"model": "t", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "x"}}]}]}),
     "messages[0].content[0].image_url.url"),
    (orjson.dumps({"model": "t", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {}}]}]}), "messages[0].content[0].type"),
])
def test_parse_rejects_what_cannot_be_honoured_with_400(body, param):
    with pytest.raises(GatewayError) as caught:
        parse_chat_request(body)
    assert caught.value.status == 400 and caught.value.param == param


def test_completion_body_has_openai_shape():
    body = orjson.loads(completion_body(_response(), "chatcmpl-1", 7, "summarize"))
    assert body["object"] == "chat.completion" and body["model"] == "summarize"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hello there",
                                             "refusal": None}
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert body["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(("finish", "wire"), [
    ("length", "length"), ("content_filter", "content_filter"), ("other", "stop"), (None, "stop"),
])
def test_finish_reason_reaches_the_caller_in_openai_words(finish, wire):
    body = orjson.loads(completion_body(_response(finish=finish), "c", 1, "t"))
    assert body["choices"][0]["finish_reason"] == wire
    last = orjson.loads(stream_frames(_response(finish=finish), "c", 1, "t", False)[-2][6:])
    assert last["choices"][0]["finish_reason"] == wire


def test_stream_frames_role_content_finish_usage_done():
    frames = stream_frames(_response("abcdefghij"), "c", 1, "t", include_usage=True,
                           chunk_chars=4)
    assert all(f.startswith(b"data: ") and f.endswith(b"\n\n") for f in frames)
    assert frames[-1] == b"data: [DONE]\n\n"
    chunks = [orjson.loads(f[6:]) for f in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:4]] == ["abcd", "efgh", "ij"]
    assert chunks[4]["choices"][0]["finish_reason"] == "stop"
    assert chunks[5]["choices"] == [] and chunks[5]["usage"]["total_tokens"] == 5
    assert all(c["usage"] is None for c in chunks[:5])


@pytest.mark.parametrize(("code", "status"), [
    (ErrorCode.UNKNOWN_TASK, 404), (ErrorCode.BUDGET_EXCEEDED, 429),
    (ErrorCode.QUOTA_EXCEEDED, 429), (ErrorCode.DUPLICATE_REQUEST, 409),
    (ErrorCode.FORBIDDEN, 403), (ErrorCode.NO_ELIGIBLE_MODEL, 503),
    (ErrorCode.DEADLINE_EXCEEDED, 504), (ErrorCode.INVALID_REQUEST, 400),
    (ErrorCode.RETRIES_EXHAUSTED, 502), (ErrorCode.INTERNAL, 500),
])
def test_error_codes_map_to_statuses(code, status):
    err = from_error_info(ErrorInfo(code=code, message="m"))
    assert err.status == status
    assert set(err.body()["error"]) == {"message", "type", "param", "code"}


def test_provider_failure_after_the_deadline_is_504_but_a_client_error_is_not():
    late = ErrorInfo(code=ErrorCode.RETRIES_EXHAUSTED, message="attempt timed out")
    assert from_error_info(late, deadline_passed=True).status == 504
    forbidden = ErrorInfo(code=ErrorCode.FORBIDDEN, message="no")
    assert from_error_info(forbidden, deadline_passed=True).status == 403


def test_retry_after_from_quota_windows_and_budget_periods():
    now = 86_400 * 19_000 + 5 * 3600 + 7 * 60 + 15  # 05:07:15 UTC
    minute = retry_after_s("quota exceeded: team 'x' may send 0 requests per minute", now)
    assert minute == 45
    day = retry_after_s("budget exceeded for team:t/x (day): 0.000000 of 0.000000 USD", now)
    assert day == 86_400 - (5 * 3600 + 7 * 60 + 15)
    assert retry_after_s("something else", now) is None
    err = from_error_info(ErrorInfo(code=ErrorCode.QUOTA_EXCEEDED,
                                    message="quota exceeded: team 'x' may send 1 requests "
                                            "per hour"))
    assert 1 <= int(err.headers()["retry-after"]) <= 3600


def test_api_keys_are_matched_by_hash_only():
    keys = ApiKeys([ApiKeyEntry(key_sha256=hash_key("sk-secret-1"), tenant="acme",
                                team="support", user="ana")])
    caller = keys.caller_for(bearer_token("Bearer sk-secret-1"))
    assert (caller.tenant, caller.team, caller.user) == ("acme", "support", "ana")
    assert keys.caller_for("sk-secret-2") is None and keys.caller_for(None) is None
    assert bearer_token("Basic abc") is None and bearer_token("Bearer ") is None
    assert "sk-secret-1" not in repr(keys.__dict__)


def test_api_keys_file_is_loaded_and_validated(tmp_path):
    good = tmp_path / "keys.yaml"
    good.write_text(f"keys:\n  - {{key_sha256: {hash_key('k1')}, tenant: t1}}\n")
    assert ApiKeys.load([], str(good)).caller_for("k1").tenant == "t1"
    bad = tmp_path / "bad.yaml"
    bad.write_text("keys: 3\n")
    with pytest.raises(ValueError):
        ApiKeys.load([], str(bad))
