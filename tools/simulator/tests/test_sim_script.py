"""Script validation, the admin API, latency/hang/random-failure behaviour and the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import httpx
import pytest
from modelbus_simulator import ScriptError, SimState, SimulatorServer, load_script, parse_script

OPENAI_BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
AUTH = {"authorization": "Bearer k"}

GOOD_YAML = """
seed: 7
models:
  default: {latency_ms: 1}
  gpt-4o:
    reply: "forty two"
    fail_first: 1
    failure: {kind: status, status: 429, retry_after_s: 0.5}
  claude:
    failure_rate: 0.25
    failure: {kind: truncate}
"""


def write(tmp_path, text: str):
    p = tmp_path / "script.yaml"
    p.write_text(text)
    return p


def test_sim_script_loads_yaml(tmp_path):
    s = load_script(write(tmp_path, GOOD_YAML))
    assert s.seed == 7 and s.default.latency_ms == 1
    assert set(s.models) == {"gpt-4o", "claude"}
    assert s.models["gpt-4o"].failure.status == 429
    assert s.models["gpt-4o"].failure.retry_after_s == 0.5
    assert s.models["claude"].failure.kind == "truncate"


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (
            "models:\n  gpt:\n    failure: {status: 200}\n",
            "models.gpt.failure.status",
            "between 400 and 599",
        ),
        (
            "models:\n  gpt:\n    latency: 5\n",
            "models.gpt.latency",
            "Extra inputs are not permitted",
        ),
        (
            "models:\n  gpt: {failure_rate: 1.5}\n",
            "models.gpt.failure_rate",
            "less than or equal to 1",
        ),
        ("default: {failure: {kind: explode}}\n", "default.failure.kind", "'status', 'hang'"),
        ("models:\n  gpt: {latency_ms: fast}\n", "models.gpt.latency_ms", "valid number"),
        ("default: {}\nmodels: {default: {}}\n", "", "both at top level and under `models`"),
    ],
)
def test_sim_script_bad_yaml_names_the_field(tmp_path, text, field, problem):
    with pytest.raises(ScriptError) as ei:
        load_script(write(tmp_path, text))
    msg = str(ei.value)
    assert msg.startswith("invalid simulator script ")
    assert f"{field}: " in msg and problem in msg


def test_sim_script_not_yaml_or_not_mapping(tmp_path):
    with pytest.raises(ScriptError, match="not valid YAML"):
        load_script(write(tmp_path, "models: [unclosed"))
    with pytest.raises(ScriptError, match="top level must be a mapping"):
        load_script(write(tmp_path, "- a\n- b\n"))


def test_sim_admin_put_rejects_bad_behaviour(sim):
    r = httpx.put(sim.base_url + "/_sim/models/m", json={"fail_first": -1})
    assert r.status_code == 422
    assert "fail_first: Input should be greater than or equal to 0" in r.json()["error"]
    r = httpx.put(sim.base_url + "/_sim/models/m", content=b"{nope")
    assert r.status_code == 400
    assert httpx.get(sim.base_url + "/_sim/script").json()["models"] == {}


def test_sim_admin_reset_restores_startup_script_and_counters(tmp_path):
    with SimulatorServer(write(tmp_path, GOOD_YAML)) as server:
        url = server.openai_base_url + "/chat/completions"
        body = {**OPENAI_BODY, "model": "gpt-4o"}
        assert httpx.post(url, json=body, headers=AUTH).status_code == 429
        assert (
            httpx.post(url, json=body, headers=AUTH).json()["choices"][0]["message"]["content"]
            == "forty two"
        )
        server.set_behaviour("gpt-4o", reply="changed")
        server.delete_behaviour("claude")
        assert set(httpx.get(server.base_url + "/_sim/script").json()["models"]) == {"gpt-4o"}
        assert (
            httpx.post(url, json=body, headers=AUTH).json()["choices"][0]["message"]["content"]
            == "changed"
        )
        assert server.stats()["models"]["gpt-4o"]["calls"] == 3
        server.reset()
        assert server.stats()["total_calls"] == 0
        # fail_first counts again from zero, with the startup behaviour
        assert httpx.post(url, json=body, headers=AUTH).status_code == 429
        assert set(httpx.get(server.base_url + "/_sim/script").json()["models"]) == {
            "gpt-4o",
            "claude",
        }


def test_sim_admin_delete_falls_back_to_default(sim):
    sim.set_behaviour("default", reply="from default")
    sim.set_behaviour("m", reply="from m")
    url = sim.openai_base_url + "/chat/completions"
    assert (
        httpx.post(url, json=OPENAI_BODY, headers=AUTH).json()["choices"][0]["message"]["content"]
        == "from m"
    )
    assert sim.delete_behaviour("m")["deleted"] is True
    assert (
        httpx.post(url, json=OPENAI_BODY, headers=AUTH).json()["choices"][0]["message"]["content"]
        == "from default"
    )


def test_sim_failure_rate_is_seeded_and_deterministic():
    script = parse_script({"seed": 3, "models": {"m": {"failure_rate": 0.3}}})

    def outcomes() -> list[bool]:
        state = SimState(script)
        return [state.plan("m", {}).failure is not None for _ in range(400)]

    first, second = outcomes(), outcomes()
    assert first == second
    assert 80 <= sum(first) <= 160  # ~30% of 400
    other = SimState(parse_script({"seed": 4, "models": {"m": {"failure_rate": 0.3}}}))
    assert [other.plan("m", {}).failure is not None for _ in range(400)] != first


def test_sim_latency_and_ttft(sim):
    sim.set_behaviour("slow", latency_ms=200)
    t0 = time.perf_counter()
    httpx.post(
        sim.openai_base_url + "/chat/completions",
        json={**OPENAI_BODY, "model": "slow"},
        headers=AUTH,
    )
    assert time.perf_counter() - t0 >= 0.2
    sim.set_behaviour("slow", latency_ms=0, ttft_ms=150)
    body = {**OPENAI_BODY, "model": "slow", "stream": True}
    t0 = time.perf_counter()
    with httpx.stream(
        "POST", sim.openai_base_url + "/chat/completions", json=body, headers=AUTH
    ) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert time.perf_counter() - t0 >= 0.15 and lines[-1] == "data: [DONE]"


async def test_sim_latency_overlaps_across_concurrent_calls(sim):
    sim.set_behaviour("m", latency_ms=300, jitter_ms=20)
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        t0 = time.perf_counter()
        rs = await asyncio.gather(
            *(
                client.post(
                    sim.openai_base_url + "/chat/completions", json=OPENAI_BODY, headers=AUTH
                )
                for _ in range(200)
            )
        )
        elapsed = time.perf_counter() - t0
    assert all(r.status_code == 200 for r in rs)
    # 200 x 300 ms serially would be 60 s; half that proves overlap, even on a loaded box
    assert elapsed < 30.0
    assert sim.stats()["models"]["m"]["calls"] == 200


async def test_sim_stats_count_calls_in_flight_until_answered(sim):
    sim.set_behaviour("m", latency_ms=1_500)
    async with httpx.AsyncClient(timeout=30) as client:
        calls = [asyncio.create_task(client.post(sim.openai_base_url + "/chat/completions",
                                                 json=OPENAI_BODY, headers=AUTH))
                 for _ in range(3)]
        for _ in range(100):
            if sim.stats()["in_flight"] == 3:
                break
            await asyncio.sleep(0.02)
        assert sim.stats()["in_flight"] == 3
        await asyncio.gather(*calls)
    assert sim.stats()["in_flight"] == 0


def test_sim_hang_times_out_client_and_does_not_block_shutdown():
    server = SimulatorServer().start()
    server.set_behaviour("m", fail_first=5, failure={"kind": "hang"})
    url = server.openai_base_url + "/chat/completions"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, json=OPENAI_BODY, headers=AUTH, timeout=0.5)
    # a hang still in flight while the server stops
    results: list[object] = []

    def call() -> None:
        try:
            results.append(httpx.post(url, json=OPENAI_BODY, headers=AUTH, timeout=60))
        except httpx.HTTPError as exc:
            results.append(exc)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.3)
    assert server.stats()["models"]["m"]["outcomes"] == {"hang": 2}
    t0 = time.perf_counter()
    server.stop()
    assert time.perf_counter() - t0 < 5.0
    t.join(timeout=10)
    assert not t.is_alive() and len(results) == 1
    # the hung call is released with a 503 in the provider's error shape, never a success
    assert isinstance(results[0], httpx.Response) and results[0].status_code == 503
    assert results[0].json()["error"]["type"] == "server_error"


def test_sim_cli_announces_and_rejects_bad_script(tmp_path):
    bad = write(tmp_path, "models:\n  gpt: {failure: {status: 700}}\n")
    r = subprocess.run(
        [sys.executable, "-m", "modelbus_simulator", "--script", str(bad), "--port", "0"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "models.gpt.failure.status" in r.stderr

    good = tmp_path / "good.yaml"
    good.write_text(GOOD_YAML)
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelbus_simulator", "--port", "0", "--script", str(good)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("simulator listening on http://127.0.0.1:")
        base = line.rsplit(" ", 1)[1]
        assert httpx.get(base + "/_sim/health").json() == {"status": "ok"}
        r = httpx.post(
            base + "/v1/chat/completions", json={**OPENAI_BODY, "model": "gpt-4o"}, headers=AUTH
        )
        assert r.status_code == 429 and r.headers["retry-after"] == "0.5"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown
