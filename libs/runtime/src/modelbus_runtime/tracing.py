"""OpenTelemetry tracing: one trace per request across every service.

The context travels in the W3C ``traceparent`` Kafka header. The consumer loop opens a
CONSUMER span per message as a child of the header's context; everything a handler
publishes carries that span's context on. Export is configured by the standard
environment variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_TRACES_EXPORTER``,
``OTEL_SDK_DISABLED``); the resource by ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``
(``service.name`` defaults to ``modelbus-<service>``). With none set no span is built at all: :func:`span_or_carry`
only makes the incoming context current, so what a handler publishes still carries the
request's trace on (profiles put 4-6 % of a service's CPU in building spans nobody records).
No prompt or response text is ever put on a span.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

TRACER_NAME = "modelbus"

#: modelbus provider deployment → ``gen_ai.provider.name`` (the GenAI semantic conventions'
#: well-known values; a provider they do not name keeps its own name, e.g. ``selfhosted``)
_GENAI_PROVIDER_NAMES = {"gemini": "gcp.gemini"}


def genai_provider_name(provider: str) -> str:
    return _GENAI_PROVIDER_NAMES.get(provider, provider)


def service_resource(service: str):
    """The resource of this process: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``
    win; what they leave unset defaults to ``service.name=modelbus-<service>`` and
    ``service.namespace=modelbus``."""
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    from_env = OTELResourceDetector().detect().attributes
    defaults = {"service.name": f"modelbus-{service}", "service.namespace": "modelbus"}
    return Resource.create({k: v for k, v in defaults.items() if k not in from_env})


def configure_tracing(service: str) -> None:
    """Install an exporting tracer provider when the environment asks for one."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    wants_otlp = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    if not wants_otlp or os.environ.get("OTEL_TRACES_EXPORTER", "otlp") == "none":
        return
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return  # someone (a test, an agent) installed a provider already
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=service_resource(service))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def recording() -> bool:
    """Whether a tracer provider that records spans is installed (else the API's no-op)."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


@contextmanager
def carry(parent: otel_context.Context) -> Iterator[trace.Span]:
    """Make ``parent`` current without a span of our own; yields its (non-recording) span."""
    token = otel_context.attach(parent)
    try:
        yield trace.get_current_span()
    finally:
        otel_context.detach(token)


def span_or_carry(name: str, parent: otel_context.Context, *, kind: trace.SpanKind,
                  attributes: Callable[[], dict]) -> AbstractContextManager[trace.Span]:
    """A span under ``parent`` when spans are recorded; otherwise only ``parent`` made
    current. ``attributes`` is called only when a span is made."""
    if not recording():
        return carry(parent)
    return tracer().start_as_current_span(name, context=parent, kind=kind,
                                          attributes=attributes())


def extract(headers: Mapping[str, str], request_id: str | None = None) -> otel_context.Context:
    """The context of an incoming message. A request from an upstream system that does not
    trace has no ``traceparent``: then the trace id is derived from the request id, so every
    service (the router, and audit reading the same request) joins one trace per request."""
    if "traceparent" in headers or not request_id:
        return propagate.extract(headers)
    digest = hashlib.sha256(request_id.encode()).digest()
    parent = SpanContext(
        trace_id=int.from_bytes(digest[:16], "big") or 1,
        span_id=int.from_bytes(digest[16:24], "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


def inject(headers: dict[str, str]) -> None:
    """Put the current span's context on outgoing headers (keeps an incoming
    ``traceparent`` when no span is recording, so the trace survives untraced hops)."""
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(headers)
