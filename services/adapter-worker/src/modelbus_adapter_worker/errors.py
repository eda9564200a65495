"""Provider errors, each classified retryable or terminal; that decides retry vs give up.

An adapter turns an HTTP error response into a :class:`ProviderError` (``from_status``);
the transport turns timeouts, broken connections, malformed bodies and streams that end
without their terminal event into retryable ones. Messages pass through the log scrubber
so that a key a provider echoes back never reaches a result, a log or the audit store.
"""

from __future__ import annotations

import re

import orjson
from modelbus_runtime.logging import scrub
from modelbus_schemas import ErrorCode

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class ProviderError(Exception):
    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        code: str = "provider_error",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(scrub(message)[:1000])
        self.retryable = retryable
        self.status_code = status_code
        self.code = code
        self.retry_after_s = retry_after_s

    @property
    def signals_unhealthy(self) -> bool:
        """Counts as a failure for the circuit breaker: the provider itself misbehaved
        (5xx, timeouts, broken or malformed answers), not our request (4xx) or our pace
        (429, which the rate limiter handles)."""
        if self.status_code is not None:
            return self.status_code >= 500 or self.status_code == 408
        return self.retryable

    @property
    def error_code(self) -> ErrorCode:
        return ErrorCode.RETRIES_EXHAUSTED if self.retryable else ErrorCode.PROVIDER_TERMINAL


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form falls back to our own backoff)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def parse_duration(value: object) -> float | None:
    """A protobuf JSON duration such as ``"1.5s"`` (Google's RetryInfo.retryDelay)."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    return float(match.group(1)) if match else None


def from_status(
    status: int, message: str, retry_after: str | None = None, *,
    retry_after_s: float | None = None,
) -> ProviderError:
    return ProviderError(
        f"HTTP {status}: {message}"[:500],
        retryable=status in RETRYABLE_STATUS,
        status_code=status,
        code=f"http_{status}",
        retry_after_s=parse_retry_after(retry_after) if retry_after else retry_after_s,
    )


def from_error_body(status: int, headers, body: bytes) -> ProviderError:
    """The error of a provider whose body is ``{"error": {"message": ...}}`` (OpenAI,
    Anthropic and OpenAI-compatible servers); a body of any other shape is quoted."""
    message = body[:300].decode("utf-8", "replace")
    try:
        message = orjson.loads(body)["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    return from_status(status, message, headers.get("retry-after"))


def malformed(what: str) -> ProviderError:
    return ProviderError(f"malformed response: {what}", retryable=True,
                         code="malformed_response")


def truncated(what: str) -> ProviderError:
    return ProviderError(f"stream ended without its terminal event: {what}", retryable=True,
                         code="truncated_stream")
