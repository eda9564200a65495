"""Anthropic Messages wire format: `POST /v1/messages`.

Requires an API key (`x-api-key`, or `Authorization: Bearer` as anthropic SDK >= 2 sends
it) and an `anthropic-version` header and a `max_tokens` field; accepts
`system` as a string or text blocks and message content as a string or content blocks.
Errors use `{"type": "error", "error": {"type", "message"}}` (429 rate_limit_error,
503/529 overloaded_error, 500 api_error, ...).  Streams emit the real event sequence:
message_start, content_block_start, ping, content_block_delta (text_delta)...,
content_block_stop, message_delta (stop_reason + usage), message_stop.  Tool calls are
`tool_use` blocks (stop_reason `tool_use`), streamed as `input_json_delta`; JSON output
follows `output_config.format` (json_schema); `image` blocks are counted.  Requests the
real API refuses are refused first (`rules_anthropic`).
"""

from __future__ import annotations

import asyncio
import itertools

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import rules, rules_anthropic, sse
from .answer import Answer, Choice, ToolSpec, respond
from .behaviour import Plan, SimState
from .faults import body_response, int_or_none, json_response, pre_response, read_json
from .prompts import anthropic_prompt
from .replies import split_chunks, truncated_chunks

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


def _tools(body: dict) -> tuple[list[ToolSpec], Choice]:
    specs = [
        ToolSpec(str(t.get("name")), t.get("input_schema") or {})
        for t in body.get("tools") or ()
        if isinstance(t, dict) and t.get("type") in (None, "custom")
    ]
    choice = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else {}
    mode = {"any": "required", "tool": "required", "none": "none"}.get(choice.get("type"), "auto")
    return specs, Choice(mode, choice.get("name"))


def _content(answer: Answer) -> list[dict]:
    if answer.tool_calls:
        return [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
            for c in answer.tool_calls
        ]
    return [{"type": "text", "text": answer.reply.text}]


def _message(mid: str, model: str, answer: Answer, stop: str) -> dict:
    reply = answer.reply
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _content(answer),
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
    }


def _frames(mid: str, model: str, answer: Answer, stop: str, plan: Plan) -> list[bytes]:
    reply = answer.reply
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
            {"type": "content_block_start", "index": 0, "content_block": _first_block(answer)},
        ),
        sse.event("ping", {"type": "ping"}),
    ]
    if answer.tool_calls:
        args = answer.tool_calls[0].arguments_json
        pieces, delta = [args[i : i + 8] for i in range(0, len(args), 8)], "input_json_delta"
    else:
        pieces, delta = split_chunks(reply.text), "text_delta"
    field = "partial_json" if answer.tool_calls else "text"
    truncate = plan.failure is not None and plan.failure.kind == "truncate"
    for p in truncated_chunks(pieces) if truncate else pieces:
        frames.append(
            sse.event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": delta, field: p}},
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


def _first_block(answer: Answer) -> dict:
    """The streamed block: a tool_use with empty input (filled by deltas), or empty text."""
    if answer.tool_calls:
        return {**_content(answer)[0], "input": {}}
    return {"type": "text", "text": ""}


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
        prompt = anthropic_prompt(msgs or [], body.get("system"))
        v = None
        if problem is None:
            v = rules.run(rules_anthropic.CHECKS, body, state.rule_on)
            if v is None and prompt.images and not state.behaviour_for(model).vision:
                v = rules.Violation("anthropic.images", *rules_anthropic.NO_VISION)
            problem = v and v.message
        if problem:
            state.reject("anthropic_400", v and v.rule)
            return error(400, problem)
        stream = body.get("stream") is True
        plan = state.plan(model, request.headers)
        failed = await pre_response(plan, request, error, stream, MALFORMED_FRAME, state.release)
        if failed is not None:
            return failed
        tools, choice = _tools(body)
        spec = rules_anthropic.output_schema_spec(body)
        answer = respond(model, prompt, plan.behaviour.reply, max_tokens, tools, choice,
                         spec and spec.get("schema"), call_prefix="toolu_sim",
                         break_schema=plan.behaviour.break_schema)
        stop = "tool_use" if answer.tool_calls else "max_tokens" if answer.reply.cut else "end_turn"
        mid = f"msg_sim{next(_ids):016x}"
        if stream:
            frames = _frames(mid, model, answer, stop, plan)
            return sse.stream_response(frames, plan.ttft_s, plan.chunk_delay_s)
        if plan.delay_s > 0:
            await asyncio.sleep(plan.delay_s)
        return body_response(plan, _message(mid, model, answer, stop))

    return [Route("/v1/messages", messages, methods=["POST"])]
