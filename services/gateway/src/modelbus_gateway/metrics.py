"""Prometheus metrics of the gateway (the runtime's shared ones are served alongside)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS = Counter("modelbus_gateway_calls_total", "Chat completion calls by HTTP status",
                ["status"])
SECONDS_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CALL_SECONDS = Histogram(
    "modelbus_gateway_call_seconds",
    "Time from HTTP request to response (to the response's headers for a stream)",
    buckets=SECONDS_BUCKETS,
)
PENDING = Gauge("modelbus_gateway_pending_calls", "Calls awaiting their response event")
REPLIES_REFUSED = Counter(
    "modelbus_gateway_replies_refused_total",
    "Records on the reply topic never handed to a caller, by reason (unauthenticated: no "
    "valid signature of a role allowed to answer; undecodable)", ["reason"])
REFUSED = Counter(
    "modelbus_gateway_refused_total",
    "API calls refused before reaching the event log, by reason (key_rate_limited, "
    "auth_throttled, body_too_large)", ["reason"])

STREAM_FIRST_BYTE = Histogram(
    "modelbus_gateway_stream_first_byte_seconds",
    "Time from the HTTP request of a stream=true call to its first chunk sent, by source "
    "(stream: from stream events; response: the final response, when nothing streamed)",
    ["source"], buckets=SECONDS_BUCKETS)
STREAMING_CALLS = Gauge("modelbus_gateway_streaming_calls",
                        "stream=true calls of this instance waiting for stream events")
STREAM_EVENTS = Counter(
    "modelbus_gateway_stream_events_total",
    "Records read from the stream topic, by outcome (routed to a call; ignored: no call of "
    "this instance; duplicate; gap, overflow, stopped: delivery stopped for the call, the "
    "final response supplies the rest; unauthenticated; undecodable; mismatched: key is not "
    "the event's request)", ["outcome"])


def observe_call(status: int, seconds: float) -> None:
    """A chat completion call answered with ``status`` after ``seconds``."""
    CALLS.labels(status=str(status)).inc()
    CALL_SECONDS.observe(seconds)
