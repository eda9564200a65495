"""Anthropic Messages wire format: `POST /v1/messages`.

Requires an API key (`x-api-key`, or `Authorization: Bearer` as anthropic SDK >= 2 sends
it) and an `anthropic-version` header and a `max_tokens` field; accepts
`system` as a string or text blocks and message content as a string or content blocks.
Errors use `{"type": "error", "error": {"type", "message"}}` (429 rate_limit_error,
503/529 overloaded_error, 500 api_error, ...).  Streams emit the real event sequence:
message_start, content_block_start, ping, content_block_delta (text_delta)...,
content_block_stop, message_delta (stop_reason + usage), message_stop.
"""

from __future__ import annotations

import asyncio
import itertools

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import sse
from .behaviour import Plan, SimState
from .faults import body_response, int_or_none, json_response, pre_response, read_json
from .replies import Reply, chat_prompt, make_reply, split_chunks, truncated_chunks

_ids = itertools.count(1)
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
MALFORMED_FRAME = (
    b'event: message_start\ndata: {"type": "message_start", "message": <<not json>>\n\n'
)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    etype = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return json_response(
        {"type": "error", "error": {"type": etype, "message": message}}, status, headers
    )


def _message(mid: str, model: str, reply: Reply, stop: str) -> dict:
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": reply.text}],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
    }


def _frames(mid: str, model: str, reply: Reply, stop: str, plan: Plan) -> list[bytes]:
    start = {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1},
    }
    frames = [
        sse.event("message_start", {"type": "message_start", "message": start}),
        sse.event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        sse.event("ping", {"type": "ping"}),
    ]
    pieces = split_chunks(reply.text)
    truncate = plan.failure is not None and plan.failure.kind == "truncate"
    for p in truncated_chunks(pieces) if truncate else pieces:
        frames.append(
            sse.event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": p},
                },
            )
        )
    if truncate:
        return frames
    frames += [
        sse.event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse.event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            },
        ),
        sse.event("message_stop", {"type": "message_stop"}),
    ]
    return frames


def routes(state: SimState) -> list[Route]:
    async def messages(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        bearer = auth.startswith("Bearer ") and auth[7:].strip()
        if not request.headers.get("x-api-key") and not bearer:
            state.reject("anthropic_401")
            return error(401, "x-api-key header is required")
        if not request.headers.get("anthropic-version"):
            state.reject("anthropic_400")
            return error(400, "anthropic-version: header is required")
        body = await read_json(request)
        if body is None:
            state.reject("anthropic_400")
            return error(400, "There was an error parsing the body of your request as JSON.")
        model, msgs = body.get("model"), body.get("messages")
        max_tokens = int_or_none(body.get("max_tokens"))
        problem = None
        if not isinstance(model, str) or not model:
            problem = "model: Field required"
        elif max_tokens is None:
            problem = "max_tokens: Field required"
        elif max_tokens < 1:
            problem = "max_tokens: Input should be greater than or equal to 1"
        elif not isinstance(msgs, list) or not msgs:
            problem = "messages: at least one message is required"
        if problem:
            state.reject("anthropic_400")
            return error(400, problem)
        stream = body.get("stream") is True
        plan = state.plan(model, request.headers)
        failed = await pre_response(plan, request, error, stream, MALFORMED_FRAME, state.release)
        if failed is not None:
            return failed
        last_user, n_in = chat_prompt(msgs, body.get("system"))
        reply = make_reply(model, last_user, plan.behaviour.reply, max_tokens, n_in)
        stop = "max_tokens" if reply.cut else "end_turn"
        mid = f"msg_sim{next(_ids):016x}"
        if stream:
            frames = _frames(mid, model, reply, stop, plan)
            return sse.stream_response(frames, plan.ttft_s, plan.chunk_delay_s)
        if plan.delay_s > 0:
            await asyncio.sleep(plan.delay_s)
        return body_response(plan, _message(mid, model, reply, stop))

    return [Route("/v1/messages", messages, methods=["POST"])]
