"""Embedding calls: the inputs a task still needs vectors for, split into the provider's
batches, and each batch's answer read back in input order.

* OpenAI and self-hosted OpenAI-compatible servers (vLLM, Ollama): ``POST {base}/embeddings``
  with ``input`` (a list), ``dimensions`` when asked and ``encoding_format: float``; at most
  2,048 inputs and 300,000 tokens a call
  (https://platform.openai.com/docs/api-reference/embeddings/create): a batch is also closed
  before it passes ``OPENAI_BATCH_CHARS`` characters (at worst about two characters a
  token, so under the token limit; an input longer than that goes alone).
  ``data[].index`` places each vector; ``usage.prompt_tokens`` counts the input.
* Gemini: ``POST {base}/models/{model}:batchEmbedContents`` with ``requests[]`` of
  ``{model, content: {parts: [{text}]}, outputDimensionality}``; at most 100 requests a call
  (https://ai.google.dev/api/embeddings#method:-models.batchembedcontents). The answer's
  ``embeddings[].values`` are in request order. It reports no token count: the input tokens
  are estimated at four characters a token (what the cost is computed from).
* Anthropic has no embeddings API (no embedder; the worker answers with a terminal error).
"""

from __future__ import annotations

from urllib.parse import quote

import orjson
from modelbus_schemas import TaskEvent

from modelbus_adapter_worker.adapters import Completion, HttpRequest
from modelbus_adapter_worker.errors import ProviderError, from_error_body, malformed

OPENAI_BATCH = 2048
OPENAI_BATCH_CHARS = 600_000
GEMINI_BATCH = 100
_BAD_BODY = (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError,
             AttributeError)


def batches(items: list[str], size: int, max_chars: int | None = None) -> list[list[str]]:
    """``items`` in order, at most ``size`` (and ``max_chars`` characters) a batch."""
    out: list[list[str]] = []
    chars = 0
    for item in items:
        full = bool(out) and (len(out[-1]) >= size or (
            max_chars is not None and chars + len(item) > max_chars))
        if not out or full:
            out.append([])
            chars = 0
        out[-1].append(item)
        chars += len(item)
    return out


def _vectors(raw: list, count: int) -> list[list[float]]:
    if len(raw) != count:
        raise ValueError(f"{len(raw)} vectors for {count} inputs")
    return [[float(x) for x in vector] for vector in raw]


class OpenAIEmbedder:
    batch_size = OPENAI_BATCH

    def __init__(self, api_key: str | None, *, system: str = "openai") -> None:
        self.system = system
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def build(self, task: TaskEvent, inputs: list[str]) -> list[HttpRequest]:
        out = []
        for batch in batches(inputs, self.batch_size, OPENAI_BATCH_CHARS):
            body: dict = {"model": task.model, "input": batch, "encoding_format": "float"}
            if task.params.dimensions is not None:
                body["dimensions"] = task.params.dimensions
            out.append(HttpRequest("POST", "/embeddings", body, self._headers,
                                   meta={"count": len(batch)}))
        return out

    def parse(self, body: bytes, request: HttpRequest | None = None) -> Completion:
        try:
            data = orjson.loads(body)
            rows = sorted(data["data"], key=lambda row: int(row["index"]))
            count = request.meta["count"] if request else len(rows)
            usage = data.get("usage") or {}
            return Completion(
                text="", finish_reason="stop",
                input_tokens=int(usage.get("prompt_tokens", 0)), output_tokens=0,
                response_model=data.get("model"),
                embeddings=_vectors([row["embedding"] for row in rows], count))
        except _BAD_BODY as exc:
            raise malformed(f"embeddings: {exc.__class__.__name__}") from None

    def stream_parser(self, request: HttpRequest | None = None):
        raise NotImplementedError("embeddings are not streamed")

    def classify(self, status: int, headers, body: bytes) -> ProviderError:
        return from_error_body(status, headers, body)


class GeminiEmbedder:
    batch_size = GEMINI_BATCH

    def __init__(self, api_key: str) -> None:
        from modelbus_adapter_worker.adapters.gemini_generate import GeminiAdapter

        self.system = "gemini"
        self._errors = GeminiAdapter(api_key)
        self._headers = {"x-goog-api-key": api_key, "Content-Type": "application/json"}

    def build(self, task: TaskEvent, inputs: list[str]) -> list[HttpRequest]:
        model = task.model.removeprefix("models/")
        path = f"/models/{quote(model, safe='-._~')}:batchEmbedContents"
        out = []
        for batch in batches(inputs, self.batch_size):
            requests = []
            for text in batch:
                one: dict = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
                if task.params.dimensions is not None:
                    one["outputDimensionality"] = task.params.dimensions
                requests.append(one)
            out.append(HttpRequest("POST", path, {"requests": requests}, self._headers,
                                   meta={"count": len(batch),
                                         "chars": sum(map(len, batch))}))
        return out

    def parse(self, body: bytes, request: HttpRequest | None = None) -> Completion:
        try:
            data = orjson.loads(body)
            raw = [e["values"] for e in data["embeddings"]]
            meta = request.meta if request else {"count": len(raw), "chars": 0}
            usage = data.get("usageMetadata") or {}
            tokens = int(usage.get("promptTokenCount") or max(1, meta["chars"] // 4))
            return Completion(text="", finish_reason="stop", input_tokens=tokens,
                              output_tokens=0, response_model=None,
                              embeddings=_vectors(raw, meta["count"]))
        except _BAD_BODY as exc:
            raise malformed(f"embeddings: {exc.__class__.__name__}") from None

    def stream_parser(self, request: HttpRequest | None = None):
        raise NotImplementedError("embeddings are not streamed")

    def classify(self, status: int, headers, body: bytes) -> ProviderError:
        return self._errors.classify(status, headers, body)
