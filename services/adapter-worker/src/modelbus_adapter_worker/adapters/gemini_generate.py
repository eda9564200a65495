"""Google Gemini ``generateContent`` (``POST {base}/models/{model}:generateContent``, base
``https://generativelanguage.googleapis.com/v1beta``), streamed with
``:streamGenerateContent?alt=sse``.

Turns are ``contents`` of ``parts`` with roles ``user`` / ``model``; the system prompt is
``systemInstruction``; limits go in ``generationConfig`` (what is sent is decided in
:mod:`~modelbus_adapter_worker.adapters.normalize_gemini`). Function calls come as whole
``functionCall`` parts, also when streamed; Gemini gives them no ids, so stable ones are
made. The key travels in the
``x-goog-api-key`` header, never in the URL (URLs end up in logs). A Gemini stream has no
``[DONE]``: it is complete only when a chunk carried a ``finishReason``. A 429's
``RetryInfo.retryDelay`` is honoured like ``Retry-After``.

Stream deltas: each chunk's text, and each function call whole (one fragment with id,
name and all its arguments).
"""

from __future__ import annotations

from urllib.parse import quote

import orjson
from modelbus_schemas import TaskEvent
from modelbus_schemas.stream import ToolCallDelta

from modelbus_adapter_worker.adapters import Completion, HttpRequest, StreamDelta
from modelbus_adapter_worker.adapters.normalize_gemini import body_of, candidate_output
from modelbus_adapter_worker.errors import (
    ProviderError,
    from_status,
    malformed,
    parse_duration,
    truncated,
)

FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
          "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
          "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
          "IMAGE_SAFETY": "content_filter", "MALFORMED_FUNCTION_CALL": "error"}
_BAD_BODY = (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError)


def _finish(value: str | None, calls: list | None = None) -> str:
    if calls and value in (None, "STOP"):
        return "tool_calls"  # Gemini ends a function-calling turn with STOP
    return FINISH.get(value or "", "other")


class GeminiAdapter:
    system = "gemini"

    def __init__(self, api_key: str) -> None:
        self._headers = {"x-goog-api-key": api_key, "Content-Type": "application/json"}

    def build(self, task: TaskEvent, *, stream: bool = False) -> HttpRequest:
        body = body_of(task)
        model = quote(task.model.removeprefix("models/"), safe="-._~")
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return HttpRequest("POST", f"/models/{model}:{method}", body, self._headers, stream)

    def parse(self, body: bytes, request: HttpRequest | None = None) -> Completion:
        try:
            data = orjson.loads(body)
            candidates = data.get("candidates") or []
            usage = data.get("usageMetadata") or {}
            calls: list = []
            if candidates:
                (text, calls), finish = (candidate_output(candidates[0]),
                                         candidates[0].get("finishReason"))
            elif (data.get("promptFeedback") or {}).get("blockReason"):
                text, finish = "", "SAFETY"
            else:
                raise KeyError("candidates")
            return Completion(
                text=text, finish_reason=_finish(finish, calls),
                input_tokens=int(usage.get("promptTokenCount", 0)),
                output_tokens=int(usage.get("candidatesTokenCount", 0)),
                response_model=data.get("modelVersion"), tool_calls=calls or None,
            )
        except _BAD_BODY as exc:
            raise malformed(exc.__class__.__name__) from None

    def stream_parser(self, request: HttpRequest | None = None) -> GeminiStream:
        return GeminiStream()

    def classify(self, status: int, headers, body: bytes) -> ProviderError:
        message, delay = body[:300].decode("utf-8", "replace"), None
        try:
            err = orjson.loads(body)["error"]
            message = f"{err.get('status', '')} {err.get('message', '')}".strip()
            for detail in err.get("details") or ():
                if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
                    delay = parse_duration(detail.get("retryDelay"))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            pass
        return from_status(status, message, headers.get("retry-after"), retry_after_s=delay)


class GeminiStream:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: list = []
        self.reason: str | None = None
        self.usage: dict = {}
        self.model: str | None = None
        self.pending = StreamDelta()

    def feed(self, event: str | None, data: str) -> bool:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise malformed("stream frame is not JSON") from None
        if not isinstance(chunk, dict):
            raise malformed("stream frame is not an object")
        if "error" in chunk:
            err = chunk["error"] or {}
            status = err.get("code") if isinstance(err.get("code"), int) else 500
            raise from_status(status, str(err.get("message", "stream error")))
        self.model = chunk.get("modelVersion") or self.model
        if chunk.get("usageMetadata"):
            self.usage = chunk["usageMetadata"]
        if (chunk.get("promptFeedback") or {}).get("blockReason"):
            self.reason = "SAFETY"
        got_output = False
        for candidate in (chunk.get("candidates") or ())[:1]:
            try:
                first = len(self.calls)
                piece, calls = candidate_output(candidate, first)
                fragments = [ToolCallDelta(index=first + n, id=c.id, name=c.name,
                                           arguments=c.arguments) for n, c in enumerate(calls)]
            except _BAD_BODY as exc:
                raise malformed(f"function call: {exc.__class__.__name__}") from None
            if piece or calls:
                self.text.append(piece)
                self.calls.extend(calls)
                self.pending.add(StreamDelta(piece, fragments))
                got_output = True
            self.reason = candidate.get("finishReason") or self.reason
        return got_output

    def take_delta(self) -> StreamDelta:
        delta, self.pending = self.pending, StreamDelta()
        return delta

    def finish(self) -> Completion:
        if self.reason is None:
            raise truncated("no chunk with a finishReason")
        return Completion(
            text="".join(self.text), finish_reason=_finish(self.reason, self.calls),
            input_tokens=int(self.usage.get("promptTokenCount", 0)),
            output_tokens=int(self.usage.get("candidatesTokenCount", 0)),
            response_model=self.model, tool_calls=self.calls or None,
        )
