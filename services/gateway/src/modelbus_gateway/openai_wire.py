"""OpenAI Chat Completions wire format: parse a request body, render a response.

Only what modelbus can honour is accepted: messages of every role (``developer`` is
``system``) with text and ``image_url`` parts, assistant ``tool_calls`` and ``tool`` turns
(:mod:`modelbus_gateway.openai_messages`), ``tools``, ``tool_choice``,
``parallel_tool_calls``, ``response_format``, ``max_tokens``/``max_completion_tokens``,
``temperature``, ``top_p``, ``stop``, ``n`` = 1, ``stream`` and ``stream_options``, and
``metadata`` (string pairs, carried on the request event). The ``model`` names a task.
The response's ``model`` is that task; the models that answered go in a header; tool calls
come back as OpenAI ``tool_calls``. Streams are rendered by
:mod:`~modelbus_gateway.openai_stream`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from modelbus_schemas import ChatMessage, GenerationParams, ResponseEvent
from pydantic import ValidationError

from modelbus_gateway.errors import bad_request
from modelbus_gateway.openai_messages import (
    json_body,
    parse_messages,
    parse_tools,
    tool_calls_wire,
)


@dataclass(frozen=True)
class ChatCall:
    task: str
    messages: list[ChatMessage]
    params: GenerationParams
    stream: bool
    include_usage: bool
    metadata: dict[str, str]


def _stop(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    return [raw] if isinstance(raw, str) else raw


def parse_chat_request(raw: bytes) -> ChatCall:
    """A validated call, or a 400 :class:`~modelbus_gateway.errors.GatewayError`."""
    body, task, metadata = json_body(raw)
    if body.get("n", 1) != 1:
        raise bad_request("only n=1 is supported", "n")
    tools = parse_tools(body)
    try:
        params = GenerationParams(
            max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
            temperature=body.get("temperature"), top_p=body.get("top_p"),
            stop=_stop(body.get("stop")), **tools,
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = str(err["loc"][0]) if err["loc"] else "tool_choice"  # cross-field: tools
        raise bad_request(f"{field}: {err['msg']}", field) from None
    options = body.get("stream_options") or {}
    return ChatCall(
        task=task, messages=parse_messages(body.get("messages")), params=params,
        stream=bool(body.get("stream")),
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        metadata=metadata,
    )


def usage_wire(response: ResponseEvent) -> dict:
    u = response.usage
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens}


OPENAI_FINISH_REASONS = frozenset({"stop", "length", "content_filter", "tool_calls"})


def openai_finish(response: ResponseEvent) -> str:
    """The response's finish reason in OpenAI's words; ``stop`` when it has none of those."""
    reason = response.finish_reason
    return reason if reason in OPENAI_FINISH_REASONS else "stop"


def _message(response: ResponseEvent) -> dict:
    if response.tool_calls:
        return {"role": "assistant", "content": response.output, "refusal": None,
                "tool_calls": tool_calls_wire(response.tool_calls)}
    return {"role": "assistant", "content": response.output or "", "refusal": None}


def completion_body(response: ResponseEvent, call_id: str, created: int, model: str) -> bytes:
    return orjson.dumps({
        "id": call_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": _message(response),
                     "logprobs": None, "finish_reason": openai_finish(response)}],
        "usage": usage_wire(response), "system_fingerprint": None,
    })


def models_body(tasks: list[str], created: int = 0) -> bytes:
    return orjson.dumps({"object": "list", "data": [
        {"id": t, "object": "model", "created": created, "owned_by": "modelbus"} for t in tasks
    ]})
