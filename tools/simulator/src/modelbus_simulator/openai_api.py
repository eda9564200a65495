"""OpenAI Chat Completions wire format: `POST /v1/chat/completions`, `GET /v1/models`.

Also serves self-hosted OpenAI-compatible backends (vLLM, Ollama): same format, other
base URL.  Requires `Authorization: Bearer <anything>`; errors use OpenAI's shape
`{"error": {"message", "type", "param", "code"}}`.  Streams are `chat.completion.chunk`
frames ending in `data: [DONE]`, with a final usage chunk (empty choices) when
`stream_options.include_usage` is set.  Tool calls come back as `message.tool_calls`
(finish reason `tool_calls`), streamed as `delta.tool_calls` fragments by index;
`response_format` json_object / json_schema gives JSON content; `image_url` parts are
counted.  Requests the real API refuses are refused first (`rules_openai`).
"""

from __future__ import annotations

import asyncio
import itertools
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import rules, rules_openai, sse
from .answer import JSON_ANY, Answer, Choice, ToolSpec, respond
from .behaviour import Plan, SimState
from .faults import body_response, int_or_none, json_response, pre_response, read_json
from .prompts import openai_prompt
from .replies import Reply, split_chunks, truncated_chunks

_ids = itertools.count(1)
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
MALFORMED_FRAME = b'data: {"id": "chatcmpl-sim", "choices": [ <<not json>>\n\n'


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    etype, code = _ERROR_TYPES.get(status, ("server_error", None))
    body = {"error": {"message": message, "type": etype, "param": None, "code": code}}
    return json_response(body, status, headers)


def invalid(v: rules.Violation) -> Response:
    body = {"error": {"message": v.message, "type": "invalid_request_error",
                      "param": v.param, "code": v.code}}
    return json_response(body, 400)


def unauthorized(request: Request, state: SimState) -> Response | None:
    """The 401 OpenAI sends without `Authorization: Bearer <key>`, else None."""
    auth = request.headers.get("authorization", "")
    if auth.startswith("Bearer ") and auth[7:].strip():
        return None
    state.reject("openai_401")
    return error(
        401,
        "You didn't provide an API key. You need to provide your API key in an "
        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    )


def _tools(body: dict) -> tuple[list[ToolSpec], Choice]:
    specs = [
        ToolSpec(str(t["function"].get("name")), t["function"].get("parameters") or {})
        for t in body.get("tools") or ()
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return specs, Choice("required", (choice.get("function") or {}).get("name"))
    return specs, Choice(choice if isinstance(choice, str) else "auto")


def _json_schema(body: dict) -> dict | None:
    fmt = body.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        return JSON_ANY
    if kind == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema") or JSON_ANY
    return None


def _tool_calls(answer: Answer) -> list[dict]:
    return [
        {"id": c.id, "type": "function",
         "function": {"name": c.name, "arguments": c.arguments_json}}
        for c in answer.tool_calls
    ]


def _completion(cid: str, created: int, model: str, answer: Answer, finish: str) -> dict:
    reply = answer.reply
    message = {"role": "assistant", "content": reply.text, "refusal": None}
    if answer.tool_calls:
        message.update(content=None, tool_calls=_tool_calls(answer))
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": _usage(reply),
        "system_fingerprint": "fp_modelbus_sim",
    }


def _usage(reply: Reply) -> dict:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


def _frames(cid: str, created: int, model: str, answer: Answer, finish: str, plan: Plan,
            usage: bool) -> list[bytes]:
    reply = answer.reply
    base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
    if usage:
        base["usage"] = None

    def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse.data({**base, "choices": [choice]})

    truncate = plan.failure is not None and plan.failure.kind == "truncate"
    if answer.tool_calls:
        frames = []
        for index, call in enumerate(_tool_calls(answer)):
            head = {**call, "index": index, "function": {**call["function"], "arguments": ""}}
            frames.append(chunk({"role": "assistant", "content": None, "tool_calls": [head]}))
            args = call["function"]["arguments"]
            pieces = [args[i : i + 8] for i in range(0, len(args), 8)]
            frames += [
                chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
                for p in (truncated_chunks(pieces) if truncate else pieces)
            ]
        if truncate:
            return frames
    else:
        frames = [chunk({"role": "assistant", "content": ""})]
        pieces = split_chunks(reply.text)
        if truncate:
            return frames + [chunk({"content": p}) for p in truncated_chunks(pieces)]
        frames += [chunk({"content": p}) for p in pieces]
    frames.append(chunk({}, finish))
    if usage:
        frames.append(sse.data({**base, "choices": [], "usage": _usage(reply)}))
    frames.append(sse.DONE)
    return frames


def routes(state: SimState) -> list[Route]:
    async def chat_completions(request: Request) -> Response:
        denied = unauthorized(request, state)
        if denied is not None:
            return denied
        body = await read_json(request)
        if body is None:
            state.reject("openai_400")
            return error(400, "We could not parse the JSON body of your request.")
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            state.reject("openai_400")
            return error(400, "you must provide a model parameter")
        if not isinstance(messages, list) or not messages:
            state.reject("openai_400")
            return error(400, "'messages' must be a non-empty array")
        violation = rules.run(rules_openai.CHECKS, body, state.rule_on)
        prompt = openai_prompt(messages)
        if violation is None and prompt.images and not state.behaviour_for(model).vision:
            violation = rules.Violation("openai.images", *rules_openai.NO_VISION)
        if violation is not None:
            state.reject("openai_400", violation.rule)
            return invalid(violation)
        stream = body.get("stream") is True
        plan = state.plan(model, request.headers)
        failed = await pre_response(plan, request, error, stream, MALFORMED_FRAME, state.release)
        if failed is not None:
            return failed
        max_tokens = int_or_none(body.get("max_completion_tokens"))
        if max_tokens is None:
            max_tokens = int_or_none(body.get("max_tokens"))
        tools, choice = _tools(body)
        answer = respond(model, prompt, plan.behaviour.reply, max_tokens, tools, choice,
                         _json_schema(body), break_schema=plan.behaviour.break_schema)
        finish = "tool_calls" if answer.tool_calls else "length" if answer.reply.cut else "stop"
        cid, created = f"chatcmpl-sim{next(_ids):08x}", int(time.time())
        if stream:
            opts = body.get("stream_options")
            usage = isinstance(opts, dict) and opts.get("include_usage") is True
            frames = _frames(cid, created, model, answer, finish, plan, usage)
            return sse.stream_response(frames, plan.ttft_s, plan.chunk_delay_s)
        if plan.delay_s > 0:
            await asyncio.sleep(plan.delay_s)
        return body_response(plan, _completion(cid, created, model, answer, finish))

    async def list_models(request: Request) -> Response:
        created = int(time.time())
        names = sorted(state.behaviours)
        if "anthropic-version" in request.headers:  # same path, Anthropic's list shape
            data = [
                {"type": "model", "id": n, "display_name": n, "created_at": "2025-01-01T00:00:00Z"}
                for n in names
            ]
            first, last = (names[0], names[-1]) if names else (None, None)
            return json_response(
                {"data": data, "has_more": False, "first_id": first, "last_id": last}
            )
        data = [
            {"id": n, "object": "model", "created": created, "owned_by": "modelbus-simulator"}
            for n in names
        ]
        return json_response({"object": "list", "data": data})

    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
    ]
