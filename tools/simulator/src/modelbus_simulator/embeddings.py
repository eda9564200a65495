"""Embeddings: OpenAI `POST /v1/embeddings` (also the self-hosted OpenAI-compatible path)
and Gemini `models/{m}:embedContent` / `:batchEmbedContents`.

Vectors are deterministic: SHAKE-256 of the input text, read as 16-bit numbers, mapped to
[-1, 1] and L2-normalised, so the same text always gives the same vector.  The length is
the model's default dimension (`DEFAULT_DIMS`, a behaviour's `embedding_dim`, else 1536
for OpenAI-style and 768 for Gemini models) or the requested `dimensions` /
`outputDimensionality`: a shorter vector is the prefix of the full one, re-normalised, as
with the providers' shortened embeddings.  `encoding_format: base64` returns
little-endian float32 bytes in base64 (what the openai SDK asks for by default).  Every
call goes through the scripted behaviour (latency, failures) and is counted with its
number of inputs in `GET /_sim/stats` -> `embeddings`.

Rules: OpenAI input non-empty, at most 2048 inputs, `dimensions` only on
text-embedding-3 models and at most the model's size
(https://platform.openai.com/docs/api-reference/embeddings/create); Gemini at most 100
requests per batch (`rules_gemini.batch_embed`).
"""

from __future__ import annotations

import array
import asyncio
import base64
import hashlib
import math
import sys

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import rules, rules_gemini
from .behaviour import SimState
from .faults import ErrorFn, int_or_none, json_response, pre_response, read_json
from .openai_api import error as openai_error
from .openai_api import invalid as openai_invalid
from .openai_api import unauthorized

GEMINI_METHODS = ("embedContent", "batchEmbedContents")
DEFAULT_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "gemini-embedding-001": 3072,
    "text-embedding-004": 768,
    "text-embedding-005": 768,
    "embedding-001": 768,
}
MAX_OPENAI_INPUTS = 2048


def vector(text: str, dims: int) -> list[float]:
    raw = hashlib.shake_256(text.encode()).digest(2 * dims)
    values = array.array("H", raw)
    if sys.byteorder == "big":
        values.byteswap()
    floats = [v / 32767.5 - 1.0 for v in values]
    norm = math.sqrt(sum(f * f for f in floats)) or 1.0
    return [f / norm for f in floats]


def model_dims(state: SimState, model: str, fallback: int) -> int:
    scripted = state.behaviour_for(model).embedding_dim
    return scripted or DEFAULT_DIMS.get(model.removeprefix("models/"), fallback)


def _b64(vec: list[float]) -> str:
    packed = array.array("f", vec)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def _openai_texts(value: object) -> list[str] | None:
    """Inputs as texts (token arrays become their decimal text); None if malformed."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [" ".join(map(str, value))]
    if isinstance(value, list) and all(isinstance(v, (str, list)) for v in value):
        out = [_openai_texts(v) for v in value]
        return None if any(o is None or len(o) != 1 for o in out) else [o[0] for o in out]
    return None


def _openai_problem(model: str, texts: list[str] | None, dims: int | None, full: int,
                    encoding: object) -> rules.Violation | None:
    bad_input = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
    if not texts or any(t == "" for t in texts):
        return rules.Violation("openai.embeddings_input", bad_input, "input", None)
    if len(texts) > MAX_OPENAI_INPUTS:
        return rules.Violation("openai.embeddings_input",
                               f"Too many inputs. The max number of inputs is {MAX_OPENAI_INPUTS}.",
                               "input", None)
    if encoding not in (None, "float", "base64"):
        return rules.Violation("openai.embeddings_input",
                               f"Invalid value for 'encoding_format': {encoding!r}.",
                               "encoding_format", "invalid_value")
    if dims is not None:
        if model == "text-embedding-ada-002":
            return rules.Violation("openai.embeddings_input",
                                   "This model does not support specifying dimensions.",
                                   "dimensions", None)
        if not 1 <= dims <= full:
            return rules.Violation("openai.embeddings_input",
                                   f"Invalid 'dimensions': must be between 1 and {full}.",
                                   "dimensions", "invalid_value")
    return None


def _shorten(full: list[float], dims: int) -> list[float]:
    if dims >= len(full):
        return full
    head = full[:dims]
    norm = math.sqrt(sum(f * f for f in head)) or 1.0
    return [f / norm for f in head]


async def _served(state: SimState, request: Request, model: str, error: ErrorFn,
                  inputs: int) -> Response | None:
    """Scripted failure or latency for one embedding call, which is counted first."""
    state.count_embeddings(model, inputs)
    plan = state.plan(model, request.headers)
    failed = await pre_response(plan, request, error, False, b"", state.release)
    if failed is None and plan.delay_s > 0:
        await asyncio.sleep(plan.delay_s)
    return failed


def routes(state: SimState) -> list[Route]:
    async def openai_embeddings(request: Request) -> Response:
        denied = unauthorized(request, state)
        if denied is not None:
            return denied
        body = await read_json(request)
        model = body.get("model") if body else None
        if not isinstance(model, str) or not model:
            state.reject("openai_400")
            return openai_error(400, "you must provide a model parameter")
        texts = _openai_texts(body.get("input"))
        dims = int_or_none(body.get("dimensions"))
        full = model_dims(state, model, 1536)
        v = _openai_problem(model, texts, dims, full, body.get("encoding_format"))
        if v is not None and state.rule_on(v.rule):
            state.reject("openai_400", v.rule)
            return openai_invalid(v)
        texts = texts or [""]
        failed = await _served(state, request, model, openai_error, len(texts))
        if failed is not None:
            return failed
        as_b64 = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vec = _shorten(vector(text, full), dims or full)
            data.append({"object": "embedding", "index": i,
                         "embedding": _b64(vec) if as_b64 else vec})
        tokens = sum(max(1, len(t.split())) for t in texts)
        return json_response({"object": "list", "data": data, "model": model,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    return [Route("/v1/embeddings", openai_embeddings, methods=["POST"])]


def _gemini_text(content: object) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    return " ".join(p["text"] for p in parts or () if isinstance(p, dict)
                    and isinstance(p.get("text"), str))


async def gemini(state: SimState, request: Request, model: str, method: str, body: dict,
                 error: ErrorFn) -> Response:
    """`:embedContent` / `:batchEmbedContents` for `model` (called by `gemini_api`)."""
    batch = method == "batchEmbedContents"
    items = body.get("requests") if batch else [body]
    v = rules.run([("gemini.batch_embed", rules_gemini.batch_embed)], body, state.rule_on)
    if v is None and (not isinstance(items, list) or not items):
        v = rules.Violation("gemini.batch_embed",
                            "* BatchEmbedContentsRequest.requests: requests is not specified")
    texts = [_gemini_text(item.get("content")) if isinstance(item, dict) else ""
             for item in items or ()]
    if v is None and any(not t for t in texts):
        v = rules.Violation("gemini.batch_embed",
                            "* EmbedContentRequest.content: content is not specified")
    if v is not None:
        state.reject("gemini_400", v.rule)
        return error(400, v.message, None)
    failed = await _served(state, request, model, error, len(texts))
    if failed is not None:
        return failed
    full = model_dims(state, model, 768)
    out = []
    for item, text in zip(items, texts, strict=True):
        dims = int_or_none(item.get("outputDimensionality", item.get("output_dimensionality")))
        out.append({"values": _shorten(vector(text, full), dims or full)})
    return json_response({"embeddings": out} if batch else {"embedding": out[0]})
