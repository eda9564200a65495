"""Every service's /metrics parses with prometheus-client's parser and carries the series
ops need, with the right labels; a planted API key never reaches any log."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_stack
from tests.observability.traffic import drive_request_path
from tests.upstream import RESPONSES, Upstream, request_json

PLANTED_KEY = "sk-planted-" + uuid.uuid4().hex

EXPECTED = {
    "router": {
        "modelbus_router_decisions_total": {"route", "outcome"},
        "modelbus_messages_handled_total": {"topic", "outcome"},
        "modelbus_handler_seconds": {"topic"},
        "modelbus_consumer_lag": {"group", "topic", "partition"},
        "modelbus_dlq_messages_total": {"topic", "reason"},
    },
    "worker-openai": {
        "modelbus_provider_latency_seconds": {"provider", "model", "outcome"},
        "modelbus_provider_calls_total": {"provider", "model", "outcome"},
        "modelbus_tokens_total": {"team", "provider", "model", "direction"},
        "modelbus_cost_usd_total": {"team", "provider", "model"},
        "modelbus_retries_total": {"provider", "model"},
        "modelbus_circuit_open": {"provider", "model"},
        "modelbus_consumer_lag": {"group", "topic", "partition"},
    },
    "aggregator": {
        "modelbus_responses_total": {"task", "status"},
        "modelbus_response_latency_seconds": {"task"},
        "modelbus_consumer_lag": {"group", "topic", "partition"},
    },
    "audit": {
        "modelbus_messages_handled_total": {"topic", "outcome"},
        "modelbus_consumer_lag": {"group", "topic", "partition"},
    },
}


@pytest.fixture(scope="module")
def planted_stack(tmp_path_factory, kafka_bootstrap, redis_url):
    workdir = tmp_path_factory.mktemp("observability")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELBUS_API_KEY", PLANTED_KEY)
        stack = start_stack(workdir, kafka_bootstrap, redis_url,
                            f"sqlite+aiosqlite:///{workdir / 'audit.db'}")
    yield stack
    stack.stop()


def _series(url: str) -> dict[str, list[dict[str, str]]]:
    text = httpx.get(url + "/metrics").text
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(family.name, []).append(sample.labels)
            out.setdefault(sample.name, []).append(sample.labels)
    return out


async def test_every_service_exports_the_series_ops_need(planted_stack):
    stack = planted_stack
    await drive_request_path(stack, "metrics")
    await asyncio.sleep(1.5)  # lag gauges refresh once a second

    for service, wanted in EXPECTED.items():
        series = _series(stack.health[service])
        for name, labels in wanted.items():
            assert name in series, f"{service} does not export {name}"
            assert any(labels <= set(s) for s in series[name]), (
                f"{service}: {name} lacks labels {labels}: {series[name][:3]}")
    worker = _series(stack.health["worker-openai"])
    assert any(s.get("team") == "support" for s in worker["modelbus_tokens_total"])
    assert worker["modelbus_retries_total"], "the scripted 503 was retried and counted"


async def test_planted_api_key_never_reaches_a_log(planted_stack):
    stack = planted_stack
    rid = f"leak-{uuid.uuid4().hex[:6]}"
    # a provider that echoes what it was sent in its error (the worst case)
    await asyncio.to_thread(
        httpx.put, f"{stack.simulator_url}/_sim/models/gpt-4o-mini",
        json={"fail_first": 3, "failure": {"kind": "status", "status": 400,
                                           "message": f"bad key {PLANTED_KEY}"}})
    async with Upstream(stack.bootstrap) as upstream:
        responses = await upstream.tail(RESPONSES)
        await upstream.send(request_json(rid))
        [response] = await responses.collect(lambda r: r.key.decode() == rid, 1)
        await responses.stop()
    assert PLANTED_KEY.encode() not in response.value
    logs = {p.name: p.read_text(errors="replace") for p in (stack.workdir / "logs").iterdir()}
    assert logs.get("worker-openai.log"), "the worker did log"
    leaked = [name for name, text in logs.items() if PLANTED_KEY in text]
    assert leaked == [], f"the planted key reached {leaked}"
