"""OpenAI Chat Completions wire format: `POST /v1/chat/completions`, `GET /v1/models`.

Also serves self-hosted OpenAI-compatible backends (vLLM, Ollama): same format, other
base URL.  Requires `Authorization: Bearer <anything>`; errors use OpenAI's shape
`{"error": {"message", "type", "param", "code"}}`.  Streams are `chat.completion.chunk`
frames ending in `data: [DONE]`, with a final usage chunk (empty choices) when
`stream_options.include_usage` is set.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import sse
from .behaviour import Plan, SimState
from .faults import body_response, int_or_none, json_response, pre_response, read_json
from .replies import Reply, chat_prompt, make_reply, split_chunks, truncated_chunks

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


def _completion(cid: str, created: int, model: str, reply: Reply, finish: str) -> dict:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text, "refusal": None},
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


def _frames(cid: str, created: int, model: str, reply: Reply, finish: str, plan: Plan, usage: bool):
    base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
    if usage:
        base["usage"] = None

    def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse.data({**base, "choices": [choice]})

    frames = [chunk({"role": "assistant", "content": ""})]
    pieces = split_chunks(reply.text)
    if plan.failure is not None and plan.failure.kind == "truncate":
        return frames + [chunk({"content": p}) for p in truncated_chunks(pieces)]
    frames += [chunk({"content": p}) for p in pieces]
    frames.append(chunk({}, finish))
    if usage:
        frames.append(sse.data({**base, "choices": [], "usage": _usage(reply)}))
    frames.append(sse.DONE)
    return frames


def routes(state: SimState) -> list[Route]:
    async def chat_completions(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            state.reject("openai_401")
            return error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
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
        stream = body.get("stream") is True
        plan = state.plan(model, request.headers)
        failed = await pre_response(plan, request, error, stream, MALFORMED_FRAME, state.release)
        if failed is not None:
            return failed
        max_tokens = int_or_none(body.get("max_completion_tokens"))
        if max_tokens is None:
            max_tokens = int_or_none(body.get("max_tokens"))
        last_user, n_in = chat_prompt(messages)
        reply = make_reply(model, last_user, plan.behaviour.reply, max_tokens, n_in)
        finish = "length" if reply.cut else "stop"
        cid, created = f"chatcmpl-sim{next(_ids):08x}", int(time.time())
        if stream:
            opts = body.get("stream_options")
            usage = isinstance(opts, dict) and opts.get("include_usage") is True
            frames = _frames(cid, created, model, reply, finish, plan, usage)
            return sse.stream_response(frames, plan.ttft_s, plan.chunk_delay_s)
        if plan.delay_s > 0:
            await asyncio.sleep(plan.delay_s)
        return body_response(plan, _completion(cid, created, model, reply, finish))

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
