"""The stack's monitor on real processes: a 'broker' holding more memory than the threshold
is warned about once (then again at twice the threshold), an exited process once, and
``status.json`` carries every process' resident memory. And which provider the environment
makes real."""

from __future__ import annotations

import json
import sys

from modelbus_cli.monitor import StackMonitor
from modelbus_cli.processes import ProcessGroup, wait_for
from modelbus_cli.providers import real_providers

HOLD_80_MB = "import sys, time; b = bytearray(80 * 2**20); print('held', flush=True); time.sleep(60)"


def test_warns_once_per_doubling_past_the_threshold_and_reports_exits(tmp_path):
    group = ProcessGroup(tmp_path)
    broker = group.spawn("broker", [sys.executable, "-c", HOLD_80_MB])
    gone = group.spawn("worker-x", [sys.executable, "-c", "raise SystemExit(3)"])
    said: list[str] = []
    try:
        wait_for(lambda: "held" in broker.log_path.read_text(), "allocation", 30, broker.proc)
        gone.proc.wait(30)
        monitor = StackMonitor(group, warn_mb=30, out=said.append)
        first = monitor.check()
        monitor.check()
    finally:
        group.stop_all()
    assert first.broker_rss_mb > 80
    warnings = [line for line in said if "broker holds" in line]
    assert len(warnings) == 1 and "no retention" in warnings[0]  # 30 and 60 both passed: one line; next at 120
    assert sum("worker-x exited with code 3" in line for line in said) == 1
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["processes"]["broker"]["rss_mb"] > 80
    assert status["processes"]["worker-x"] == {"pid": gone.proc.pid, "alive": False,
                                               "exit_code": 3, "rss_mb": None}
    assert "broker 8" in first.line() or "broker 9" in first.line()


def test_real_providers_come_from_keys_or_addresses_in_the_environment():
    env = {"OPENAI_API_KEY": "sk-a", "MODELBUS_OPENAI_API_KEY": "sk-b",
           "GEMINI_API_KEY": "g", "MODELBUS_SELFHOSTED_BASE_URL": "http://127.0.0.1:11434/v1"}
    real = real_providers(("openai", "anthropic", "gemini", "selfhosted"), env)
    assert set(real) == {"openai", "gemini", "selfhosted"}
    assert real["openai"].worker_env() == {"MODELBUS_PROVIDER": "openai",
                                           "MODELBUS_API_KEY": "sk-b"}  # MODELBUS_ wins
    assert "sk-b" not in real["openai"].describe()
    assert real["openai"].describe().endswith("(key from MODELBUS_OPENAI_API_KEY)")
    assert real["selfhosted"].worker_env()["MODELBUS_BASE_URL"] == "http://127.0.0.1:11434/v1"
    assert "MODELBUS_API_KEY" not in real["selfhosted"].worker_env()
