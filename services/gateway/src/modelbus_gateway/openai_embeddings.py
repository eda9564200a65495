"""OpenAI Embeddings wire format (``POST /v1/embeddings``): parse a call, render vectors.

``model`` names a task; ``input`` is a string or a list of strings (token-id inputs are
refused: modelbus routes across providers whose tokenizers differ); ``dimensions`` and
``encoding_format`` (``float``, or ``base64`` of little-endian float32 — the default of the
official SDKs, which decode it) are honoured.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

import orjson
from modelbus_schemas import ResponseEvent
from modelbus_schemas.content import MAX_TEXT_CHARS

from modelbus_gateway.errors import bad_request
from modelbus_gateway.openai_messages import json_body

MAX_INPUTS = 256  # the contract's bound on RequestEvent.input


@dataclass(frozen=True)
class EmbedCall:
    task: str
    inputs: list[str]
    dimensions: int | None
    encoding: str
    metadata: dict[str, str]


def _inputs(raw: Any) -> list[str]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise bad_request("input must be a string or a non-empty list of strings", "input")
    if len(items) > MAX_INPUTS:
        raise bad_request(f"at most {MAX_INPUTS} inputs per call", "input")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise bad_request("inputs must be strings (token ids are not accepted)",
                              f"input[{i}]")
        if not item or len(item) > MAX_TEXT_CHARS:
            raise bad_request(f"each input must be 1 to {MAX_TEXT_CHARS} characters",
                              f"input[{i}]")
    return items


def parse_embeddings_request(raw: bytes) -> EmbedCall:
    body, task, metadata = json_body(raw)
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or isinstance(
            dimensions, bool) or not 1 <= dimensions <= 8192):
        raise bad_request("dimensions must be an integer from 1 to 8192", "dimensions")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise bad_request("encoding_format must be float or base64", "encoding_format")
    return EmbedCall(task=task, inputs=_inputs(body.get("input")), dimensions=dimensions,
                     encoding=encoding, metadata=metadata)


def _encoded(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings_body(response: ResponseEvent, call: EmbedCall) -> bytes:
    vectors = response.embeddings or []
    tokens = response.usage.input_tokens
    return orjson.dumps({
        "object": "list", "model": call.task,
        "data": [{"object": "embedding", "index": i, "embedding": _encoded(v, call.encoding)}
                 for i, v in enumerate(vectors)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
