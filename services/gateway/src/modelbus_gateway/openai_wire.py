"""OpenAI Chat Completions wire format: parse a request body, render a response or a stream.

Only what modelbus can honour is accepted: text messages (``system``/``developer``/``user``/
``assistant``; string or text-part content), ``max_tokens``/``max_completion_tokens``,
``temperature``, ``top_p``, ``stop``, ``n`` = 1, ``stream`` and ``stream_options``, and
``metadata`` (string pairs, carried on the request event). The ``model`` names a task.
The response's ``model`` is that task; the models that answered go in a header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from modelbus_schemas import ChatMessage, GenerationParams, ResponseEvent
from pydantic import ValidationError

from modelbus_gateway.errors import bad_request

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class ChatCall:
    task: str
    messages: list[ChatMessage]
    params: GenerationParams
    stream: bool
    include_usage: bool
    metadata: dict[str, str]


def _text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad_request("only text content parts are supported",
                                  f"messages[{index}].content")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    if content is None:
        return ""
    raise bad_request("content must be a string or a list of text parts",
                      f"messages[{index}].content")


def _messages(raw: Any) -> list[ChatMessage]:
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages must be a non-empty list", "messages")
    out = []
    for i, msg in enumerate(raw):
        role = _ROLES.get(msg.get("role")) if isinstance(msg, dict) else None
        if role is None:
            raise bad_request("role must be one of system, developer, user, assistant",
                              f"messages[{i}].role")
        try:
            out.append(ChatMessage(role=role, content=_text(msg.get("content"), i)))
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]["msg"]
            raise bad_request(problem, f"messages[{i}].content") from None
    return out


def _stop(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    return [raw] if isinstance(raw, str) else raw


def parse_chat_request(raw: bytes) -> ChatCall:
    """A validated call, or a 400 :class:`~modelbus_gateway.errors.GatewayError`."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    task = body.get("model")
    if not isinstance(task, str) or not task:
        raise bad_request("model is required: the name of a task", "model")
    if body.get("n", 1) != 1:
        raise bad_request("only n=1 is supported", "n")
    try:
        params = GenerationParams(
            max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
            temperature=body.get("temperature"), top_p=body.get("top_p"),
            stop=_stop(body.get("stop")),
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise bad_request(f"{err['loc'][0]}: {err['msg']}", str(err["loc"][0])) from None
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise bad_request("metadata must map strings to strings", "metadata")
    options = body.get("stream_options") or {}
    return ChatCall(
        task=task, messages=_messages(body.get("messages")), params=params,
        stream=bool(body.get("stream")),
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        metadata=metadata,
    )


def _usage(response: ResponseEvent) -> dict:
    u = response.usage
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens}


OPENAI_FINISH_REASONS = frozenset({"stop", "length", "content_filter", "tool_calls"})


def openai_finish(response: ResponseEvent) -> str:
    """The response's finish reason in OpenAI's words; ``stop`` when it has none of those."""
    reason = response.finish_reason
    return reason if reason in OPENAI_FINISH_REASONS else "stop"


def completion_body(response: ResponseEvent, call_id: str, created: int, model: str) -> bytes:
    return orjson.dumps({
        "id": call_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant",
                                             "content": response.output or "", "refusal": None},
                     "logprobs": None, "finish_reason": openai_finish(response)}],
        "usage": _usage(response), "system_fingerprint": None,
    })


def stream_frames(response: ResponseEvent, call_id: str, created: int, model: str,
                  include_usage: bool, chunk_chars: int = 64) -> list[bytes]:
    """SSE frames: role chunk, content chunk(s), finish chunk, optional usage chunk, [DONE]."""
    head = {"id": call_id, "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": None}
    if include_usage:
        head["usage"] = None

    def frame(delta: dict, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"

    text = response.output or ""
    frames = [frame({"role": "assistant", "content": ""})]
    frames += [frame({"content": text[i:i + chunk_chars]})
               for i in range(0, len(text), chunk_chars)]
    frames.append(frame({}, openai_finish(response)))
    if include_usage:
        usage = {**head, "choices": [], "usage": _usage(response)}
        frames.append(b"data: " + orjson.dumps(usage) + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return frames


def models_body(tasks: list[str], created: int = 0) -> bytes:
    return orjson.dumps({"object": "list", "data": [
        {"id": t, "object": "model", "created": created, "owned_by": "modelbus"} for t in tasks
    ]})
