"""Google Gemini wire format: `POST /v1beta/models/{model}:generateContent` and
`:streamGenerateContent` (SSE with `?alt=sse`, otherwise a JSON array), also under `/v1/`.

API key via `x-goog-api-key` header or `key` query parameter.  Reads `contents`,
`systemInstruction` and `generationConfig.maxOutputTokens`.  Errors use Google's shape
`{"error": {"code", "message", "status"}}` (429 RESOURCE_EXHAUSTED with a RetryInfo
detail when a retry delay is scripted, 503 UNAVAILABLE, 500 INTERNAL, ...).  The last
stream chunk carries `finishReason` and full `usageMetadata`; there is no other terminator.
"""

from __future__ import annotations

import asyncio
import itertools

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import sse
from .behaviour import Plan, SimState
from .faults import body_response, int_or_none, json_response, pre_response, read_json
from .replies import Reply, gemini_prompt, make_reply, split_chunks, truncated_chunks

_ids = itertools.count(1)
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
    529: "UNAVAILABLE",
}
MALFORMED_FRAME = b'data: {"candidates": [ <<not json>>\n\n'


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    err: dict = {
        "code": status,
        "message": message,
        "status": _STATUS.get(status, "FAILED_PRECONDITION" if status < 500 else "UNKNOWN"),
    }
    if headers and "retry-after" in headers:
        err["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": headers["retry-after"] + "s",
            }
        ]
    return json_response({"error": err}, status, headers)


def _chunk(rid: str, model: str, text: str, finish: str | None, usage: dict) -> dict:
    cand: dict = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish is not None:
        cand["finishReason"] = finish
    return {"candidates": [cand], "usageMetadata": usage, "modelVersion": model, "responseId": rid}


def _full_usage(reply: Reply) -> dict:
    return {
        "promptTokenCount": reply.input_tokens,
        "candidatesTokenCount": reply.output_tokens,
        "totalTokenCount": reply.input_tokens + reply.output_tokens,
    }


def _stream_chunks(rid: str, model: str, reply: Reply, finish: str, plan: Plan) -> list[dict]:
    partial = {"promptTokenCount": reply.input_tokens, "totalTokenCount": reply.input_tokens}
    pieces = split_chunks(reply.text)
    if plan.failure is not None and plan.failure.kind == "truncate":
        return [_chunk(rid, model, p, None, partial) for p in truncated_chunks(pieces)]
    if not pieces:
        pieces = [""]
    out = [_chunk(rid, model, p, None, partial) for p in pieces[:-1]]
    out.append(_chunk(rid, model, pieces[-1], finish, _full_usage(reply)))
    return out


def routes(state: SimState) -> list[Route]:
    async def model_call(request: Request) -> Response:
        target = request.path_params["target"]
        model, _, method = target.rpartition(":")
        if method not in ("generateContent", "streamGenerateContent") or not model:
            state.reject("gemini_404")
            return error(404, f"Method not found: {target}")
        if not (request.headers.get("x-goog-api-key") or request.query_params.get("key")):
            state.reject("gemini_403")
            return error(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call this API.",
            )
        body = await read_json(request)
        if body is None:
            state.reject("gemini_400")
            return error(400, "Invalid JSON payload received.")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            state.reject("gemini_400")
            return error(400, "* GenerateContentRequest.contents: contents is not specified")
        stream = method == "streamGenerateContent"
        sse_mode = stream and request.query_params.get("alt") == "sse"
        plan = state.plan(model, request.headers)
        failed = await pre_response(plan, request, error, sse_mode, MALFORMED_FRAME, state.release)
        if failed is not None:
            return failed
        config = body.get("generationConfig") or body.get("generation_config") or {}
        max_tokens = None
        if isinstance(config, dict):
            max_tokens = int_or_none(config.get("maxOutputTokens", config.get("max_output_tokens")))
        system = body.get("systemInstruction", body.get("system_instruction"))
        last_user, n_in = gemini_prompt(contents, system)
        reply = make_reply(model, last_user, plan.behaviour.reply, max_tokens, n_in)
        finish = "MAX_TOKENS" if reply.cut else "STOP"
        rid = f"sim{next(_ids):012x}"
        if stream:
            chunks = _stream_chunks(rid, model, reply, finish, plan)
            if sse_mode:
                frames = [sse.data(c) for c in chunks]
                return sse.stream_response(frames, plan.ttft_s, plan.chunk_delay_s)
            if plan.ttft_s > 0:
                await asyncio.sleep(plan.ttft_s)
            raw = orjson.dumps(chunks)
            if plan.failure is not None:  # truncate: a JSON array that never closes
                raw = raw[:-1]
            return Response(raw, media_type="application/json")
        if plan.delay_s > 0:
            await asyncio.sleep(plan.delay_s)
        return body_response(plan, _chunk(rid, model, reply.text, finish, _full_usage(reply)))

    async def list_models(request: Request) -> Response:
        models = [
            {
                "name": f"models/{n}",
                "displayName": n,
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent"],
            }
            for n in sorted(state.behaviours)
        ]
        return json_response({"models": models})

    return [
        Route("/v1beta/models", list_models, methods=["GET"]),
        Route("/v1/models/{target:path}", model_call, methods=["POST"]),
        Route("/v1beta/models/{target:path}", model_call, methods=["POST"]),
    ]
