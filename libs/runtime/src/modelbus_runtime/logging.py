"""JSON logs with the request id and trace id of the message being handled, secrets scrubbed.

``request_id_var`` is set by the consumer around every handler call, so any log line written
while handling a message carries its request id. Every record passes through
:class:`SecretScrubber`, which masks registered secret values, common key shapes
(``sk-...``, ``Bearer ...``) and every shape :mod:`modelbus_runtime.secret_scan` knows.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from datetime import UTC, datetime

import orjson
from opentelemetry import trace

from modelbus_runtime.secret_scan import mask_secrets

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "modelbus_request_id", default=None
)

_SECRET_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._\-]{8,})"
)
_registered_secrets: set[str] = set()
MASK = "***"


def register_secret(value: str | None) -> None:
    """Make sure this exact value is masked in every log line from now on."""
    if value and len(value) >= 4:
        _registered_secrets.add(value)


def scrub(text: str) -> str:
    for secret in _registered_secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _SECRET_SHAPES.sub(MASK, mask_secrets(text)[0])


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return scrub(orjson.dumps(entry, default=str).decode())


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_fields(**fields: object) -> dict:
    """``logger.info("msg", extra=log_fields(topic=...))`` adds structured fields."""
    return {"fields": fields}


class OutageWarning:
    """One warning line per outage burst of a dependency, not one per call.

    ``warn(what, exc)`` logs ``"<subject> unavailable (<exception class>); <what>"`` at most
    once every ``every_s`` seconds; calls in between are dropped (the outage is already
    reported, and a log line per request would flood the logs while Redis is down).
    """

    def __init__(self, logger: logging.Logger, subject: str, every_s: float = 5.0) -> None:
        self.logger = logger
        self.subject = subject
        self.every_s = every_s
        self._last = float("-inf")

    def warn(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.logger.warning("%s unavailable (%s); %s", self.subject,
                                exc.__class__.__name__, what)
