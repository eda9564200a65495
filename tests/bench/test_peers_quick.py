"""``make bench-peers`` cannot rot: the pieces of its quick mode that need no LiteLLM
install (the mock, direct calls, the modelbus Kafka path on a real stack) run for a few
requests, and the report they make has the structure the docs and the plot read."""

from __future__ import annotations

import json

import pytest

from bench.peers import levels, mock, modelbus_stack, report
from bench.peers.load import HttpTarget, KafkaTarget

pytestmark = pytest.mark.e2e


async def test_quick_pieces_make_a_full_report(tmp_path, kafka_bootstrap, redis_url):
    sim = mock.start(tmp_path / "mock")
    mb = modelbus_stack.start(sim.simulator_url, kafka_bootstrap, redis_url, gateway=False)
    direct = HttpTarget("direct", sim.simulator_url, "bench", mock.MODEL)
    kafka = KafkaTarget("modelbus-kafka", mb.bootstrap, pids=lambda: mb.pids)
    try:
        for target in (direct, kafka):
            await target.start()
        sequential = await levels.sequential([direct, kafka], rounds=5, warmup=2)
        loop = {t.name: await levels.closed_loop_level(t, 2, 1.0) for t in (direct, kafka)}
        for figures in loop.values():
            levels.added_over(figures, loop["direct"])
        idle = await levels.idle({"modelbus": mb.pids}, 0.5)
    finally:
        for target in (direct, kafka):
            await target.stop()
        mb.stop()
        sim.stop()

    assert sequential["modelbus-kafka"]["requests_ok"] == 5
    assert sequential["modelbus-kafka"]["errors"] == 0
    assert sequential["modelbus-kafka"]["added_p50_ms"] is not None
    assert sequential["direct"]["added_p50_ms"] == 0
    path = loop["modelbus-kafka"]
    assert path["errors"] == 0 and path["rps"] > 0 and path["loadgen_cores"] >= 0
    assert {"router", "worker", "aggregator", "audit"} <= set(
        path["cpu_ms_per_request_by_process"])
    assert path["cpu_ms_per_request"] > 0
    assert set(idle["modelbus"]["by_process"]) == set(mb.pids)

    # a LiteLLM entry (the direct figures, at 1 CPU-ms per request) makes ratios appear
    peer = {**loop["direct"], "cpu_ms_per_request": 1.0}
    result = {"meta": {"quick": True},
              "sequential": {**sequential, "litellm-1w": sequential["direct"]},
              "closed_loop": [{"callers": 2, "targets": {**loop, "litellm-1w": peer}}],
              "idle": idle}
    data, png = report.write(result, tmp_path / "results")
    written = json.loads(data.read_text())
    assert png.read_bytes()[:4] == b"\x89PNG"
    ratio = written["ratios"]["c=2"]["modelbus-kafka / litellm-1w"]
    assert ratio["rps"] == round(path["rps"] / loop["direct"]["rps"], 2)
    assert ratio["cpu_ms_per_request"] == round(path["cpu_ms_per_request"], 2)
    assert set(written["ratios"]) == {"sequential", "c=2"}
    text = report.table(written)
    assert "modelbus-kafka" in text and "closed loop, 2 callers" in text
