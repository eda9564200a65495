"""The committed JSON Schemas are the contract: they must match the models, and a request
written from the JSON Schema alone must be accepted by the models."""

from __future__ import annotations

import json

import pytest
from modelbus_schemas import DeadLetterInfo, DecodeError, DlqReason, RequestEvent, decode
from modelbus_schemas.jsonschema import CONTRACT, SCHEMA_DIR, drifted, render
from modelbus_schemas.topics import all_topics, dlq_topic, source_topics, tasks_topic


def test_committed_json_schemas_match_the_models():
    assert drifted() == [], "run `make schemas` and commit schemas/json"


def test_drift_is_detected(tmp_path):
    for name, model in CONTRACT.items():
        (tmp_path / f"{name}.schema.json").write_text(render(name, model))
    path = tmp_path / "request.v1.schema.json"
    schema = json.loads(path.read_text())
    schema["properties"]["task"]["maxLength"] = 999
    path.write_text(json.dumps(schema))
    assert drifted(tmp_path) == ["request.v1.schema.json"]


def test_request_example_in_the_schema_is_valid_for_the_model():
    schema = json.loads((SCHEMA_DIR / "request.v1.schema.json").read_text())
    assert set(schema["required"]) == {"request_id", "task"}
    for example in schema["examples"]:
        assert RequestEvent.model_validate_json(json.dumps(example)).task == example["task"]


def test_decode_tells_not_json_from_schema_errors():
    with pytest.raises(DecodeError) as not_json:
        decode(RequestEvent, b"{nope")
    assert not_json.value.kind == "not_json"
    with pytest.raises(DecodeError) as bad:
        decode(RequestEvent, b'{"request_id": "r1", "task": 5, "messages": []}')
    assert bad.value.kind == "schema"
    assert "task" in str(bad.value)
    with pytest.raises(DecodeError, match="at least one message") as empty:
        decode(RequestEvent, b'{"request_id": "r1", "task": "t", "messages": []}')
    assert empty.value.kind == "schema"
    with pytest.raises(DecodeError):
        decode(RequestEvent, b"")


def test_unknown_request_fields_are_rejected_to_catch_typos():
    body = {"request_id": "r1", "task": "t", "messages": [{"role": "user", "content": "x"}],
            "reply_too": "oops"}
    with pytest.raises(DecodeError, match="reply_too"):
        decode(RequestEvent, json.dumps(body).encode())


def test_dead_letter_info_round_trips_through_headers():
    info = DeadLetterInfo.now(source_topic="modelbus.requests.v1", source_partition=2,
                              source_offset=41, service="router", error_class="PoisonMessage",
                              error_message="x" * 5000, reason=DlqReason.SCHEMA)
    headers = {k: v.decode() for k, v in info.to_headers()}
    again = DeadLetterInfo.from_headers(headers)
    assert again == info
    assert len(again.error_message) == 2048
    assert again.event_id() == "dlq:modelbus.requests.v1:2:41"


def test_every_source_topic_has_a_dlq():
    topics = all_topics()
    for topic in source_topics():
        assert dlq_topic(topic) in topics
    assert tasks_topic("openai") == "modelbus.tasks.openai.v1"
