"""One trace from the caller through the gateway and every service, exported over OTLP.

The stack runs as separate processes (simulator, router, openai worker, aggregator, audit,
gateway), each exporting with the standard ``OTEL_*`` variables to a collector this test
starts. The test is the client: it opens its own span, sends its ``traceparent`` with a
chat completion, and then finds ONE trace whose root is its span, with spans of the
gateway, router, worker, aggregator and audit, each process named by its resource
(``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` honoured), and no key or prompt text
in any span."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from modelbus_cli.stack import Stack
from modelbus_gateway.auth import hash_key
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tests.gateway.conftest import POLICY
from tests.gateway.otlp_collector import OtlpCollector

pytestmark = pytest.mark.e2e

SERVICES = {  # stack name → module, and the service.name its resource must carry
    "router": ("modelbus_router.app", "modelbus-router"),
    "aggregator": ("modelbus_aggregator.app", "modelbus-aggregator"),
    "audit": ("modelbus_audit.app", "modelbus-audit"),
    "worker-openai": ("modelbus_adapter_worker.app", "modelbus-adapter-worker-openai"),
    "gateway": ("modelbus_gateway.app", "modelbus-gateway"),
}


@pytest.fixture(scope="module")
def traced_stack(tmp_path_factory, kafka_bootstrap, redis_url, sqlite_url):
    workdir = tmp_path_factory.mktemp("gw-trace")
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY)
    key = f"sk-trace-{uuid.uuid4().hex}"
    entries = [{"key_sha256": hash_key(key), "tenant": f"tr-{uuid.uuid4().hex[:6]}",
                "team": "support"}]
    with OtlpCollector() as collector:
        stack = Stack(workdir, providers=("openai",))
        stack.bootstrap, stack.redis_url, stack.database_url = (kafka_bootstrap, redis_url,
                                                                sqlite_url)
        stack.env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
                     "OTEL_BSP_SCHEDULE_DELAY": "100",
                     "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=trace-test"}
        try:
            stack.start_simulator()
            for name, (module, _) in SERVICES.items():
                env = {"MODELBUS_POLICY_PATH": str(policy)}
                if name == "worker-openai":  # one deployment per provider: named by OTEL
                    env |= {**stack.worker_env("openai"),
                            "OTEL_SERVICE_NAME": "modelbus-adapter-worker-openai"}
                if name == "gateway":
                    env["MODELBUS_API_KEYS"] = json.dumps(entries)
                stack.start_service(name, module, env)
            stack.wait_ready()
            yield stack, collector, key
        finally:
            stack.stop()


def _client_tracer(collector: OtlpCollector) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "test-client"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.url + "/v1/traces")))
    return provider


def test_a_gateway_call_is_one_trace_rooted_at_the_callers_span(traced_stack):
    stack, collector, key = traced_stack
    prompt = f"summarise this secret {uuid.uuid4().hex}"
    client = _client_tracer(collector)
    span = client.get_tracer("test").start_span("POST chat", kind=trace.SpanKind.CLIENT)
    headers = {"authorization": f"Bearer {key}"}
    TraceContextTextMapPropagator().inject(headers, trace.set_span_in_context(span))
    response = httpx.post(stack.health["gateway"] + "/v1/chat/completions", headers=headers,
                          json={"model": "summarize",
                                "messages": [{"role": "user", "content": prompt}]},
                          timeout=60)
    span.end()
    client.shutdown()
    assert response.status_code == 200, response.text
    rid = response.headers["x-request-id"]
    trace_id = format(span.get_span_context().trace_id, "032x")
    client_span = format(span.get_span_context().span_id, "016x")

    wanted = {service for _, service in SERVICES.values()}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # audit and the batch exporters report a bit later
        names = {s.resource.get("service.name") for s in collector.trace(trace_id)}
        if wanted <= names:
            break
        time.sleep(0.2)
    spans = collector.trace(trace_id)
    names = {s.resource.get("service.name") for s in spans}
    assert wanted | {"test-client"} <= names, f"missing: {wanted - names}"

    of_request = [s for s in collector.spans if s.attributes.get("modelbus.request_id") == rid]
    assert of_request and {s.trace_id for s in of_request} == {trace_id}, "ONE trace"
    [root] = [s for s in spans if s.parent_span_id is None]
    assert root.span_id == client_span and root.resource["service.name"] == "test-client"
    ids = {s.span_id for s in spans}
    assert all(s.parent_span_id in ids for s in spans if s is not root), "connected"

    [server] = [s for s in spans if s.resource["service.name"] == "modelbus-gateway"
                and s.kind == 2]  # SPAN_KIND_SERVER
    assert server.parent_span_id == client_span, "the gateway continues the caller's span"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["http.route"] == "/v1/chat/completions"
    assert server.attributes["modelbus.request_id"] == rid
    for s in spans:
        if s.resource["service.name"] != "test-client":
            assert s.resource["deployment.environment.name"] == "trace-test"
            assert s.resource["service.namespace"] == "modelbus"
    [call] = [s for s in spans if s.name.startswith("chat ")]
    assert call.attributes["gen_ai.provider.name"] == "openai"
    assert "gen_ai.system" not in call.attributes

    text = repr([(s.name, s.attributes) for s in collector.spans])
    assert key not in text and prompt not in text, "no key or prompt text on a span"

    log = (stack.group.workdir / "logs" / "gateway.log").read_text()
    lines = [json.loads(raw) for raw in log.splitlines() if raw.startswith("{")]
    [access] = [line for line in lines
                if line.get("kind") == "access" and line.get("request_id") == rid]
    assert access["trace_id"] == trace_id and access["status"] == 200
    assert access["method"] == "POST" and access["path"] == "/v1/chat/completions"
    assert key not in log and prompt not in log
