"""One trace per request across every service, with the GenAI attributes, and no secret
or prompt text in any span. The services run in this process (their real ``build``
functions, a real broker, Redis and the simulator over HTTP) so an in-memory span exporter
sees every span."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from modelbus_adapter_worker.app import WorkerSettings
from modelbus_adapter_worker.app import build as build_worker
from modelbus_aggregator.app import build as build_aggregator
from modelbus_aggregator.settings import AggregatorSettings
from modelbus_audit.app import AuditSettings
from modelbus_audit.app import build as build_audit
from modelbus_cli.stack import Stack
from modelbus_router.app import RouterSettings
from modelbus_router.app import build as build_router
from modelbus_runtime.service import serve
from modelbus_schemas.topics import WORKER
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.upstream import RESPONSES, Upstream, request_json

PLANTED_KEY = "sk-planted-" + uuid.uuid4().hex
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def simulator_url(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("sim"))
    stack.start_simulator()
    yield stack.simulator_url
    stack.group.stop_all()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)
    yield provider


async def _run_services(bootstrap, redis_url, sim, stop: asyncio.Event):
    common = {"kafka_bootstrap_servers": bootstrap, "redis_url": redis_url}
    services = [("router", RouterSettings(**common), build_router, None),
                ("aggregator", AggregatorSettings(**common), build_aggregator, None),
                ("audit", AuditSettings(**common), build_audit, None)]
    for provider in ("openai", "anthropic", "gemini"):
        base = sim + ("/v1beta" if provider == "gemini" else "/v1")
        settings = WorkerSettings(**common, provider=provider, base_url=base,
                                  api_key=PLANTED_KEY)
        services.append((f"adapter-worker-{provider}", settings, build_worker, WORKER))
    return [asyncio.create_task(serve(name, s, b, stop, role=role))
            for name, s, b, role in services]


async def test_ensemble_request_is_one_connected_trace(kafka_bootstrap, redis_url,
                                                       simulator_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    stop = asyncio.Event()
    tasks = await _run_services(kafka_bootstrap, redis_url, simulator_url, stop)
    rid = f"trace-{uuid.uuid4().hex[:8]}"
    secret_prompt = f"verify this claim {uuid.uuid4().hex}"
    try:
        await asyncio.sleep(3)  # consumers join their groups
        async with Upstream(kafka_bootstrap) as upstream:
            responses = await upstream.tail(RESPONSES)
            await upstream.send(request_json(rid, task="fact-check", text=secret_prompt))
            [response] = await responses.collect(lambda r: r.key.decode() == rid, 1, timeout=60)
            await responses.stop()
        assert json.loads(response.value)["status"] in ("ok", "partial")
        await asyncio.sleep(2)  # audit consumes the response
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    spans = [s for s in EXPORTER.get_finished_spans()
             if s.attributes.get("modelbus.request_id") == rid]
    trace_ids = {s.context.trace_id for s in spans}
    assert len(trace_ids) == 1, "every span of the request is in one trace"
    everything = [s for s in EXPORTER.get_finished_spans() if s.context.trace_id in trace_ids]
    services = {s.attributes.get("modelbus.service") for s in everything} - {None}
    assert {"router", "aggregator", "audit"} <= services
    assert {"adapter-worker-openai", "adapter-worker-anthropic", "adapter-worker-gemini"} <= \
        services, "each provider's worker took part"
    ids = {s.context.span_id for s in everything}
    outside = {s.parent.span_id if s.parent else None for s in everything
               if s.parent is None or s.parent.span_id not in ids}
    # the upstream did not trace, so the root is the one derived from the request id
    assert len(outside) == 1, "connected: every span's parent is in the trace or its root"

    calls = [s for s in everything if s.name.startswith("chat ")]
    assert {s.attributes["gen_ai.provider.name"] for s in calls} == \
        {"openai", "anthropic", "gcp.gemini"}
    assert not any("gen_ai.system" in s.attributes for s in calls), "the deprecated name"
    for span in calls:
        assert span.attributes["gen_ai.request.model"]
        assert span.attributes["gen_ai.usage.input_tokens"] > 0
        assert span.attributes["gen_ai.usage.output_tokens"] > 0
        assert span.attributes["gen_ai.response.model"]

    text = repr([(s.name, dict(s.attributes), [e.attributes for e in s.events])
                 for s in EXPORTER.get_finished_spans()])
    assert PLANTED_KEY not in text, "the API key never reaches a span"
    assert secret_prompt not in text, "no prompt text in spans"


def test_the_resource_honours_otel_service_name_and_resource_attributes(monkeypatch):
    from modelbus_runtime.tracing import service_resource

    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    default = service_resource("router").attributes
    assert default["service.name"] == "modelbus-router"
    assert default["service.namespace"] == "modelbus"

    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES",
                       "service.namespace=prod-bus,deployment.environment.name=prod")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "router-eu")
    named = service_resource("router").attributes
    assert named["service.name"] == "router-eu"
    assert named["service.namespace"] == "prod-bus"
    assert named["deployment.environment.name"] == "prod"
