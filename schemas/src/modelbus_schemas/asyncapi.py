"""The AsyncAPI 3.0 document of the event contract, generated from the models and topics.

``python -m modelbus_schemas.asyncapi [--check]`` writes (or checks) ``schemas/asyncapi.json``:
every channel (topic) with its Kafka binding, every message with its CloudEvents headers,
its Kafka key (the request id) and its payload schema (the same pydantic models the JSON
Schema files come from), and the operations an upstream system and each service perform.
A test fails when the committed document drifts from the models, and validates it with
the AsyncAPI parser.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from modelbus_schemas import cloudevents as ce
from modelbus_schemas import topics
from modelbus_schemas.deadletter import HEADER_PREFIX, DeadLetterInfo
from modelbus_schemas.events import RequestEvent
from modelbus_schemas.jsonschema import CONTRACT

DOCUMENT = Path(__file__).resolve().parents[2] / "asyncapi.json"
KAFKA_BINDING = "0.5.0"
REF = "#/components/schemas/{model}"


def _message_name(contract_name: str) -> str:
    """``approval-request.v1`` → ``approvalRequest``."""
    head, *rest = contract_name.removesuffix(".v1").split("-")
    return head + "".join(word.capitalize() for word in rest)


# (message name, model, CloudEvents type, signed by modelbus?) of every event in the contract
MESSAGES: list[tuple[str, type[BaseModel], str, bool]] = [
    (_message_name(name), model, model.CE_TYPE, model is not RequestEvent)
    for name, model in CONTRACT.items() if model is not DeadLetterInfo
]

# (channel name, address, message names, description, parameters)
CHANNELS: list[tuple[str, str, list[str], str]] = [
    ("requests", topics.REQUESTS, ["request"],
     "Upstream systems publish requests naming a task; the router consumes them."),
    ("tasks", "modelbus.tasks.{provider}.v1", ["task"],
     "One provider call per task, for that provider's adapter workers."),
    ("results", topics.RESULTS, ["result"],
     "The canonical outcome of each task, for the aggregator."),
    ("responses", topics.RESPONSES, ["response"],
     "The one response per request (the default reply topic)."),
    ("replies", "replies.{name}", ["response"],
     "Reply topics a policy's reply_topics grants a tenant."),
    ("approvalsPending", topics.APPROVALS_PENDING, ["approvalRequest"],
     "Requests parked until a human approves them."),
    ("approvalsDecisions", topics.APPROVALS_DECISIONS, ["approvalDecision"],
     "Approvers' decisions, signed with the approver role."),
    ("shadowDecisions", topics.DECISIONS_SHADOW, ["decisionShadow"],
     "What a shadow policy would have decided for each live request."),
    ("stream", topics.STREAM, ["stream"],
     ("Answers of requests with stream: true as the provider produces them, keyed by the "
      "request; the final response stays the source of truth.")),
    ("deadLetters", "{topic}.dlq", ["deadLetter"],
     ("Messages that could not be handled: the original bytes and headers plus "
      "modelbus_dlq_* headers; `modelbus dlq redrive` sends them back.")),
]

OPERATIONS: list[tuple[str, str, str, str]] = [
    ("publishRequest", "send", "requests", "An upstream system asks for a task."),
    ("receiveResponse", "receive", "responses", "An upstream system reads its answer."),
    ("receiveReply", "receive", "replies", "An upstream system reads a granted reply topic."),
    ("routeRequest", "receive", "requests", "The router consumes requests."),
    ("dispatchTask", "send", "tasks", "The router (and aggregator, for next steps) sends tasks."),
    ("runTask", "receive", "tasks", "A provider's adapter worker consumes its tasks."),
    ("publishResult", "send", "results", "A worker reports a task's outcome."),
    ("aggregateResult", "receive", "results", "The aggregator fans results in."),
    ("publishResponse", "send", "responses", "The aggregator (or router) answers."),
    ("publishShadowDecision", "send", "shadowDecisions", "The router's shadow decisions."),
    ("publishStream", "send", "stream", "A worker streams the answering call's output."),
    ("receiveStream", "receive", "stream",
     "An upstream system (or the gateway) reads an answer as it is produced."),
    ("deadLetter", "send", "deadLetters", "Any consumer dead-letters what it cannot handle."),
]


def _headers(ce_type: str, signed: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "ce_specversion": {"type": "string", "const": ce.SPECVERSION},
        "ce_id": {"type": "string", "description": "the event id (deduplication key)"},
        "ce_source": {"type": "string", "description": "the producer, e.g. a URI or name"},
        "ce_type": {"type": "string", "const": ce_type},
        "ce_time": {"type": "string", "format": "date-time"},
        "content-type": {"type": "string", "const": ce.CONTENT_TYPE},
        "traceparent": {"type": "string", "description": "W3C trace context (optional)"},
    }
    required = ["ce_specversion", "ce_id", "ce_source", "ce_type"]
    if signed:
        props["modelbus_sig"] = {
            "type": "string", "pattern": "^v1;[^;]+;[^;]+;[0-9a-f]{64}$",
            "description": "HMAC-SHA256 signature v1;<key id>;<role>;<mac> (docs/security.md)"}
        required.append("modelbus_sig")
    else:
        props["modelbus_sig"] = {
            "type": "string", "description": "optional: a tenant's signature when the tenant "
            "opted into signed requests (role tenant:<name>)"}
    return {"type": "object", "properties": props, "required": required}


def _dead_letter_headers() -> dict[str, Any]:
    fields = DeadLetterInfo.model_json_schema()["properties"]
    props = {f"{HEADER_PREFIX}{name}": {"type": "string",
                                        "description": spec.get("title", name)}
             for name, spec in fields.items()}
    return {"type": "object", "properties": props,
            "required": [f"{HEADER_PREFIX}{n}" for n in DeadLetterInfo.model_json_schema()
                         ["required"]],
            "description": "the failed message's own headers are kept as they were"}


def _key() -> dict[str, Any]:
    return {"type": "string", "description": "the request id: every event of one request "
            "shares it, so they stay ordered on one partition (murmur2 partitioner)"}


def _asyncapi_schema(node: Any) -> Any:
    """Pydantic's JSON Schema in AsyncAPI's Schema Object dialect: a discriminator there is
    the name of the property (OpenAPI's ``{propertyName, mapping}`` object is not)."""
    if isinstance(node, dict):
        out = {k: _asyncapi_schema(v) for k, v in node.items()}
        if isinstance(out.get("discriminator"), dict):
            out["discriminator"] = out["discriminator"]["propertyName"]
        return out
    if isinstance(node, list):
        return [_asyncapi_schema(v) for v in node]
    return node


def _schemas() -> dict[str, Any]:
    models = [(model, "validation") for _, model, _, _ in MESSAGES]
    _, top = models_json_schema(models, ref_template=REF)
    return _asyncapi_schema(dict(sorted(top["$defs"].items())))


def _messages() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, model, ce_type, signed in MESSAGES:
        out[name] = {
            "name": name, "title": model.__name__, "contentType": ce.CONTENT_TYPE,
            "summary": (model.__doc__ or "").strip().splitlines()[0],
            "headers": _headers(ce_type, signed),
            "payload": {"$ref": REF.format(model=model.__name__)},
            "bindings": {"kafka": {"key": _key(), "bindingVersion": KAFKA_BINDING}},
        }
    out["deadLetter"] = {
        "name": "deadLetter", "title": "Dead letter", "contentType": "application/octet-stream",
        "summary": "The original message, unchanged, with typed error headers.",
        "headers": _dead_letter_headers(),
        "payload": {"description": "the original bytes of the failed message"},
        "bindings": {"kafka": {"key": {"type": "string", "description": "the original key"},
                               "bindingVersion": KAFKA_BINDING}},
    }
    return out


def _channels() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, address, messages, description in CHANNELS:
        channel: dict[str, Any] = {
            "address": address, "description": description,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages},
        }
        if "{provider}" in address:
            channel["parameters"] = {"provider": {"enum": list(topics.PROVIDERS),
                                                  "description": "the provider"}}
        if "{name}" in address:
            channel["parameters"] = {"name": {"description": "granted by the policy"}}
        if "{topic}" in address:
            channel["parameters"] = {"topic": {"description": "the source topic"}}
        if "{" not in address:
            channel["bindings"] = {"kafka": {"topic": address, "bindingVersion": KAFKA_BINDING}}
        out[name] = channel
    return out


def _operations() -> dict[str, Any]:
    return {name: {"action": action, "summary": summary,
                   "channel": {"$ref": f"#/channels/{channel}"}}
            for name, action, channel, summary in OPERATIONS}


def document() -> dict[str, Any]:
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "modelbus event contract",
            "version": "1.0.0",
            "description": "Multi-model LLM orchestration on Kafka. Produce requests to "
            "modelbus.requests.v1 keyed by the request id (murmur2 partitioner, Java's "
            "default) with CloudEvents binary-mode headers; read the one response on the "
            "request's reply_to topic. Generated from the pydantic models: "
            "python -m modelbus_schemas.asyncapi.",
        },
        "defaultContentType": ce.CONTENT_TYPE,
        "servers": {"local": {"host": "127.0.0.1:9092", "protocol": "kafka",
                              "description": "the broker `make run` starts"}},
        "channels": _channels(),
        "operations": _operations(),
        "components": {"messages": _messages(), "schemas": _schemas()},
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"


def main() -> None:
    if "--check" in sys.argv:
        if not DOCUMENT.exists() or DOCUMENT.read_text() != render():
            sys.exit("asyncapi.json drifted from the models; run `make schemas`")
        print("asyncapi.json up to date")
    else:
        DOCUMENT.write_text(render())
        print(f"wrote {DOCUMENT}")


if __name__ == "__main__":
    main()
