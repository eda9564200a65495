"""``modelbus run`` as a newcomer starts it: from the virtual environment's ``bin/`` with a
``PATH`` that does not contain it, an OpenAI key and base URL in the environment, and nothing
else configured. The OpenAI worker must call that address (here a second simulator standing
in for the real API), the other providers the stack's own simulator; the gateway answers with
the key the banner prints, and the stack reports the broker's memory.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from modelbus_cli.processes import ProcessGroup, free_port, port_open, wait_for
from openai import OpenAI

FAKE_KEY = "sk-fake-openai-" + "k" * 24
STRIPPED = ("KAFKA_BOOTSTRAP_SERVERS", "MODELBUS_KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL",
            "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "GEMINI_API_KEY", "OPENAI_API_KEY",
            "OPENAI_BASE_URL")


class RunningStack:
    def __init__(self, proc: subprocess.Popen, workdir: Path) -> None:
        self.proc, self.workdir = proc, workdir
        self.output: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))
            if "modelbus is running" in line:
                self.ready.set()

    @property
    def text(self) -> str:
        return "\n".join(self.output)

    def find(self, pattern: str) -> str:
        match = re.search(pattern, self.text, re.MULTILINE)
        assert match, f"{pattern!r} not in the banner:\n{self.text}"
        return match.group(1)


def sim_calls(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/_sim/stats", timeout=5) as resp:
        models = json.loads(resp.read())["models"]
    return {model: stats.get("calls", 0) for model, stats in models.items()}


@pytest.fixture(scope="module")
def fake_openai(tmp_path_factory):
    """A second simulator on its own port, standing in for api.openai.com."""
    group = ProcessGroup(tmp_path_factory.mktemp("fake-openai"))
    port = free_port()
    child = group.spawn("fake-openai", [sys.executable, "-m", "modelbus_simulator",
                                        "--host", "127.0.0.1", "--port", str(port)])
    wait_for(lambda: port_open("127.0.0.1", port), "fake OpenAI", 30, child.proc)
    yield f"http://127.0.0.1:{port}"
    group.stop_all()


@pytest.fixture(scope="module")
def running(tmp_path_factory, fake_openai):
    workdir = tmp_path_factory.mktemp("run")
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    env.update(PATH="/nonexistent", OPENAI_API_KEY=FAKE_KEY,
               OPENAI_BASE_URL=f"{fake_openai}/v1", PYTHONUNBUFFERED="1")
    command = Path(sys.executable).parent / "modelbus"
    proc = subprocess.Popen(
        [str(command), "run", "--no-demo", "--workdir", str(workdir),
         "--gateway-port", str(free_port()), "--status-every", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        cwd=workdir, stdin=subprocess.DEVNULL)
    stack = RunningStack(proc, workdir)
    try:
        deadline = time.monotonic() + 240
        while not stack.ready.wait(0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.5)  # the reader thread's last lines
                pytest.fail(f"modelbus run did not come up:\n{stack.text}")
        yield stack
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            stack.exit_code = proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def test_banner_says_which_provider_is_real_and_never_prints_its_key(running, fake_openai):
    assert running.find(r"^  openai\s+(REAL .*)$") == (
        f"REAL       {fake_openai}/v1 (key from OPENAI_API_KEY)")
    simulator = running.find(r"^  simulator\s+(\S+)$")
    for provider in ("anthropic", "gemini", "selfhosted"):
        assert running.find(rf"^  {provider}\s+(.*)$") == f"simulator  {simulator}"
    assert FAKE_KEY not in running.text
    assert "memory" in running.find(r"^note: (.*)$")


def test_gateway_answers_and_each_worker_calls_its_own_provider(running, fake_openai):
    base_url = running.find(r"gateway \(OpenAI-compatible\): (\S+)")
    key = running.find(r"API key: (\S+)")
    assert f'-H "Authorization: Bearer {key}"' in running.text  # the curl example
    simulator = running.find(r"^  simulator\s+(\S+)$")
    client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)

    summary = client.chat.completions.create(
        model="summarize", messages=[{"role": "user", "content": "Summarise: logs."}])
    report = client.chat.completions.create(
        model="report", messages=[{"role": "user", "content": "Report on queues."}])
    assert summary.choices[0].message.content and report.choices[0].message.content

    real, simulated = sim_calls(fake_openai), sim_calls(simulator)
    assert real.get("gpt-4o-mini", 0) >= 2, real  # summarize, and the report's outline
    assert simulated.get("claude-sonnet-4-5", 0) >= 1, simulated  # the report's writing
    assert "gpt-4o-mini" not in simulated, simulated
    assert not any(model.startswith("claude") for model in real), real


def test_started_without_the_virtualenv_on_path(running):
    assert running.proc.poll() is None
    logs = running.workdir / "logs"
    assert {"broker.log", "simulator.log", "gateway.log", "worker-openai.log"} <= {
        p.name for p in logs.iterdir()}


def test_status_reports_the_broker_memory(running):
    status = running.workdir / "status.json"
    wait_for(status.exists, "status.json", 30)
    data = json.loads(status.read_text())
    assert data["broker_rss_mb"] > 1
    assert data["processes"]["broker"]["alive"]
    deadline = time.monotonic() + 30
    while "MB resident" not in running.text and time.monotonic() < deadline:
        time.sleep(0.5)
    assert re.search(r"status: \d+/\d+ processes up; broker \d+ MB resident", running.text)
