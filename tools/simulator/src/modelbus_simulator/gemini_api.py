"""Google Gemini wire format: `POST /v1beta/models/{model}:generateContent` and
`:streamGenerateContent` (SSE with `?alt=sse`, otherwise a JSON array), also under `/v1/`.

API key via `x-goog-api-key` header or `key` query parameter.  Reads `contents`,
`systemInstruction` and `generationConfig.maxOutputTokens`.  Errors use Google's shape
`{"error": {"code", "message", "status"}}` (429 RESOURCE_EXHAUSTED with a RetryInfo
detail when a retry delay is scripted, 503 UNAVAILABLE, 500 INTERNAL, ...).  The last
stream chunk carries `finishReason` and full `usageMetadata`; there is no other terminator.
Function calling: `tools[].functionDeclarations` + `toolConfig` give `functionCall` parts,
`functionResponse` turns get text quoting the response; `responseMimeType:
application/json` with `responseSchema` or `responseJsonSchema` gives JSON text;
`inlineData` / `fileData` images are counted.  `:embedContent` and `:batchEmbedContents`
are served by `embeddings`.  Requests the real API refuses are refused first
(`rules_gemini`).
"""

from __future__ import annotations

import asyncio
import itertools

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import embeddings, rules, rules_gemini, schemagen, sse
from .answer import JSON_ANY, Answer, Choice, ToolSpec, respond
from .behaviour import Plan, SimState
from .faults import body_response, int_or_none, json_response, pre_response, read_json
from .prompts import gemini_part, gemini_prompt
from .replies import Reply, split_chunks, truncated_chunks

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


def _tools(body: dict) -> tuple[list[ToolSpec], Choice]:
    specs = []
    for d in rules_gemini.declarations(body):
        schema = gemini_part(d, "parametersJsonSchema")
        if schema is None:
            schema = schemagen.from_openapi(d.get("parameters") or {})
        specs.append(ToolSpec(str(d.get("name")), schema))
    tool_config = gemini_part(body, "toolConfig") or {}
    fcc = gemini_part(tool_config, "functionCallingConfig") if isinstance(tool_config, dict) else {}
    fcc = fcc if isinstance(fcc, dict) else {}
    mode = {"ANY": "required", "NONE": "none"}.get(str(fcc.get("mode") or "AUTO").upper(), "auto")
    allowed = gemini_part(fcc, "allowedFunctionNames") or [None]
    return specs, Choice(mode, allowed[0] if mode == "required" else None)


def _json_schema(body: dict) -> dict | None:
    cfg = rules_gemini.config(body)
    if gemini_part(cfg, "responseMimeType") != "application/json":
        return None
    schema = gemini_part(cfg, "responseJsonSchema")
    if schema is None and gemini_part(cfg, "responseSchema") is not None:
        schema = schemagen.from_openapi(gemini_part(cfg, "responseSchema"))
    return schema or JSON_ANY


def _parts(answer: Answer, text: str) -> list[dict]:
    if answer.tool_calls:
        return [{"functionCall": {"name": c.name, "args": c.arguments}} for c in answer.tool_calls]
    return [{"text": text}]


def _chunk(rid: str, model: str, parts: list, finish: str | None, usage: dict) -> dict:
    cand: dict = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        cand["finishReason"] = finish
    return {"candidates": [cand], "usageMetadata": usage, "modelVersion": model, "responseId": rid}


def _full_usage(reply: Reply) -> dict:
    return {
        "promptTokenCount": reply.input_tokens,
        "candidatesTokenCount": reply.output_tokens,
        "totalTokenCount": reply.input_tokens + reply.output_tokens,
    }


def _stream_chunks(rid: str, model: str, answer: Answer, finish: str, plan: Plan) -> list[dict]:
    reply = answer.reply
    partial = {"promptTokenCount": reply.input_tokens, "totalTokenCount": reply.input_tokens}
    truncate = plan.failure is not None and plan.failure.kind == "truncate"
    if answer.tool_calls:  # Gemini sends a function call whole, never in fragments
        return [] if truncate else [
            _chunk(rid, model, _parts(answer, ""), finish, _full_usage(reply))
        ]
    pieces = split_chunks(reply.text)
    if truncate:
        return [_chunk(rid, model, [{"text": p}], None, partial) for p in truncated_chunks(pieces)]
    if not pieces:
        pieces = [""]
    out = [_chunk(rid, model, [{"text": p}], None, partial) for p in pieces[:-1]]
    out.append(_chunk(rid, model, [{"text": pieces[-1]}], finish, _full_usage(reply)))
    return out


def routes(state: SimState) -> list[Route]:
    async def model_call(request: Request) -> Response:
        target = request.path_params["target"]
        model, _, method = target.rpartition(":")
        if method not in ("generateContent", "streamGenerateContent", *embeddings.GEMINI_METHODS) \
                or not model:
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
        if method in embeddings.GEMINI_METHODS:
            return await embeddings.gemini(state, request, model, method, body, error)
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            state.reject("gemini_400")
            return error(400, "* GenerateContentRequest.contents: contents is not specified")
        system = body.get("systemInstruction", body.get("system_instruction"))
        prompt = gemini_prompt(contents, system)
        v = rules.run(rules_gemini.CHECKS, body, state.rule_on)
        if v is None and prompt.images and not state.behaviour_for(model).vision:
            v = rules.Violation("gemini.images", *rules_gemini.NO_VISION)
        if v is not None:
            state.reject("gemini_400", v.rule)
            return error(400, v.message)
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
        tools, choice = _tools(body)
        answer = respond(model, prompt, plan.behaviour.reply, max_tokens, tools, choice,
                         _json_schema(body), break_schema=plan.behaviour.break_schema)
        reply = answer.reply
        finish = "MAX_TOKENS" if reply.cut else "STOP"
        rid = f"sim{next(_ids):012x}"
        if stream:
            chunks = _stream_chunks(rid, model, answer, finish, plan)
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
        parts = _parts(answer, reply.text)
        return body_response(plan, _chunk(rid, model, parts, finish, _full_usage(reply)))

    async def list_models(request: Request) -> Response:
        models = [
            {
                "name": f"models/{n}",
                "displayName": n,
                "supportedGenerationMethods": [
                    "generateContent", "streamGenerateContent", *embeddings.GEMINI_METHODS
                ],
            }
            for n in sorted(state.behaviours)
        ]
        return json_response({"models": models})

    return [
        Route("/v1beta/models", list_models, methods=["GET"]),
        Route("/v1/models/{target:path}", model_call, methods=["POST"]),
        Route("/v1beta/models/{target:path}", model_call, methods=["POST"]),
    ]
