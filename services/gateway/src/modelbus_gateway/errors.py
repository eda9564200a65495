"""Gateway errors in OpenAI's error shape, and the mapping from modelbus error codes.

Every failure a caller sees is a :class:`GatewayError`: an HTTP status, OpenAI's
``{"error": {"message", "type", "param", "code"}}`` body and, where the wait is known, a
``Retry-After`` (quota windows and budget periods end at a known time).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from modelbus_runtime.budgets import period_ttl_s
from modelbus_schemas import ErrorCode, ErrorInfo

_QUOTA_WINDOW_S = {"minute": 60, "hour": 3600, "day": 86400}
_QUOTA = re.compile(r"requests per (minute|hour|day)\b")
_BUDGET = re.compile(r"budget exceeded for \S+ \((hour|day|month)\)")


@dataclass
class GatewayError(Exception):
    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    retry_after_s: int | None = None

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}

    def headers(self) -> dict[str, str]:
        return {"retry-after": str(self.retry_after_s)} if self.retry_after_s is not None else {}


def unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, "invalid_request_error", "invalid_api_key")


def bad_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, "invalid_request_error", "invalid_request", param)


def unknown_model(task: str) -> GatewayError:
    return GatewayError(404, f"The model {task!r} does not exist: it is not a task of the "
                        "routing policy", "invalid_request_error", "model_not_found", "model")


def deadline_exceeded(budget_ms: int) -> GatewayError:
    return GatewayError(504, f"no response within the latency budget of {budget_ms} ms",
                        "timeout_error", ErrorCode.DEADLINE_EXCEEDED.value)


def rate_limited(message: str, wait_s: float, code: str = "rate_limit_exceeded"
                 ) -> GatewayError:
    """429 with the whole seconds to wait before the next call is admitted."""
    return GatewayError(429, message, "rate_limit_error", code,
                        retry_after_s=max(1, math.ceil(wait_s)))


def body_too_large(limit: int) -> GatewayError:
    return GatewayError(413, f"request body larger than the limit of {limit} bytes",
                        "invalid_request_error", "request_too_large")


def event_too_large(size: int, limit: int | None = None) -> GatewayError:
    """A body within ``max_body_bytes`` whose request event modelbus would not take."""
    limit_text = f" of {limit} bytes" if limit else ""
    return GatewayError(413, f"the request makes an event of {size} bytes, above the event "
                        f"log's limit{limit_text}", "invalid_request_error",
                        "request_too_large")


def overloaded(message: str) -> GatewayError:
    return GatewayError(503, message, "server_error", "overloaded", retry_after_s=1)


# code → (status, OpenAI error type)
_STATUS: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.UNKNOWN_TASK: (404, "invalid_request_error"),
    ErrorCode.INVALID_REQUEST: (400, "invalid_request_error"),
    ErrorCode.BUDGET_EXCEEDED: (429, "insufficient_quota"),
    ErrorCode.QUOTA_EXCEEDED: (429, "rate_limit_error"),
    ErrorCode.DUPLICATE_REQUEST: (409, "invalid_request_error"),
    ErrorCode.GUARDRAIL_DENIED: (400, "invalid_request_error"),
    ErrorCode.APPROVAL_REJECTED: (403, "permission_error"),
    ErrorCode.OUTPUT_INVALID: (502, "api_error"),
    ErrorCode.FORBIDDEN: (403, "permission_error"),
    ErrorCode.NO_ELIGIBLE_MODEL: (503, "server_error"),
    ErrorCode.DEADLINE_EXCEEDED: (504, "timeout_error"),
    ErrorCode.PROVIDER_TERMINAL: (502, "api_error"),
    ErrorCode.RETRIES_EXHAUSTED: (502, "api_error"),
    ErrorCode.PROVIDER_UNAVAILABLE: (503, "server_error"),
    ErrorCode.STREAM_INTERRUPTED: (502, "api_error"),
    ErrorCode.INTERNAL: (500, "server_error"),
}


#: provider-side failures that, once the caller's deadline has passed, mean "too late"
_DEADLINE_CAUSED = {ErrorCode.RETRIES_EXHAUSTED, ErrorCode.PROVIDER_UNAVAILABLE,
                    ErrorCode.PROVIDER_TERMINAL, ErrorCode.DEADLINE_EXCEEDED}


def from_error_info(error: ErrorInfo | None, deadline_passed: bool = False) -> GatewayError:
    """The HTTP error for a modelbus error response. A provider failure answered after the
    caller's deadline (e.g. an attempt the worker cut at the deadline) is a 504."""
    if error is None:
        return GatewayError(500, "error response without details", "server_error", "internal")
    if deadline_passed and error.code in _DEADLINE_CAUSED:
        return GatewayError(504, f"deadline passed: {error.message}", "timeout_error",
                            ErrorCode.DEADLINE_EXCEEDED.value)
    status, kind = _STATUS.get(error.code, (500, "server_error"))
    param = "model" if error.code == ErrorCode.UNKNOWN_TASK else None
    code = "model_not_found" if error.code == ErrorCode.UNKNOWN_TASK else error.code.value
    retry_after = (retry_after_s(error.message)
                   if error.code in (ErrorCode.BUDGET_EXCEEDED, ErrorCode.QUOTA_EXCEEDED)
                   else None)
    return GatewayError(status, error.message, kind, code, param, retry_after)


def retry_after_s(message: str, now: float | None = None) -> int | None:
    """Seconds until the quota window or budget period named in the router's message ends."""
    now = time.time() if now is None else now
    if match := _QUOTA.search(message):
        window = _QUOTA_WINDOW_S[match.group(1)]
        return max(1, window - int(now) % window)
    if match := _BUDGET.search(message):
        return max(1, period_ttl_s(match.group(1), datetime.fromtimestamp(now, UTC)) - 86400)
    return None
