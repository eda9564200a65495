"""Logs are JSON with the request id, and secrets never reach them."""

from __future__ import annotations

import json
import logging

from modelbus_runtime.logging import JsonFormatter, register_secret, request_id_var


def _format(msg: str, *args) -> dict:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)
    return json.loads(JsonFormatter("svc").format(record))


def test_log_line_carries_request_id_and_service():
    token = request_id_var.set("req-42")
    try:
        line = _format("hello %s", "world")
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "req-42"
    assert line["service"] == "svc"
    assert line["msg"] == "hello world"


def test_registered_secrets_and_key_shapes_are_masked():
    register_secret("planted-secret-value-123")
    line = _format("calling with %s and sk-abcdefghijklmnop and Bearer tok_0123456789",
                   "planted-secret-value-123")
    text = json.dumps(line)
    assert "planted-secret-value-123" not in text
    assert "sk-abcdefghijklmnop" not in text
    assert "tok_0123456789" not in text
    assert "***" in line["msg"]


def test_log_line_carries_the_trace_id_of_the_current_span():
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("handle") as span:
        line = _format("inside a span")
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "trace_id" not in _format("outside any span")
