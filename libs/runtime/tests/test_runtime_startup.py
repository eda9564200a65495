"""Start-up of real service processes whose broker, Redis or database is not there.

A service waiting for a dependency writes one line, honours SIGTERM at once, starts when
the dependency arrives, and after ``MODELBUS_STARTUP_TIMEOUT_S`` exits 1 with a one-line
reason and no traceback, having written a bounded number of lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from modelbus_cli.processes import ProcessGroup, free_port, http_ok, wait_for
from modelbus_cli.stack import start_broker

DRAIN_BOUND_S = 5.0  # MODELBUS_DRAIN_TIMEOUT_S given to every process here


def spawn(tmp_path: Path, module: str, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / f"{module}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "MODELBUS_DRAIN_TIMEOUT_S": str(DRAIN_BOUND_S), **env})
    return proc, log


def lines(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if line.strip()]


def messages(log: Path) -> list[dict]:
    return [json.loads(line) for line in lines(log)]


def wait_for_line(proc: subprocess.Popen, log: Path, text: str, timeout: float = 60) -> None:
    wait_for(lambda: text in log.read_text(errors="replace"), f"'{text}' in the log",
             timeout, proc)


def terminate_while_waiting(proc: subprocess.Popen, log: Path, text: str,
                            after_s: float = 0.0) -> tuple[int, float]:
    """SIGTERM once ``text`` is logged (and ``after_s`` more): exit code, seconds to exit."""
    try:
        wait_for_line(proc, log, text)
        time.sleep(after_s)
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        code = proc.wait(timeout=60)
        return code, time.monotonic() - began
    finally:
        proc.kill()


def dead_port() -> int:
    return free_port()  # bound and released: nothing listens there


def test_sigterm_while_waiting_for_the_broker_stops_within_the_drain_bound(tmp_path):
    proc, log = spawn(tmp_path, "modelbus_aggregator.app",
                      {"MODELBUS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{dead_port()}"})
    code, took = terminate_while_waiting(proc, log, "waiting for the broker", after_s=2.0)
    text = log.read_text(errors="replace")
    assert code == 0, text
    assert took < DRAIN_BOUND_S, f"exit took {took:.1f}s\n{text}"
    assert "Traceback" not in text
    assert "stopped while starting" in text
    waits = [m for m in messages(log) if "waiting for" in m["msg"]]
    assert len(waits) == 1, text  # one line for the wait, not one per attempt


def test_startup_timeout_exits_1_with_one_line_and_bounded_log(tmp_path):
    port = dead_port()
    began = time.monotonic()
    proc, log = spawn(tmp_path, "modelbus_aggregator.app",
                      {"MODELBUS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
                       "MODELBUS_STARTUP_TIMEOUT_S": "12"})
    try:
        code = proc.wait(timeout=90)
    finally:
        proc.kill()
    took = time.monotonic() - began
    text = log.read_text(errors="replace")
    assert code == 1, text
    assert "Traceback" not in text and '"exc"' not in text
    found = messages(log)
    last = found[-1]
    assert last["level"] == "error"
    assert "not started within 12s" in last["msg"] and f"127.0.0.1:{port}" in last["msg"]
    assert "\n" not in last["msg"]
    # one warning when the wait began, one repeat after 10 s, the reason: nothing per attempt
    assert len(found) <= 4, text
    assert 12 <= took < 12 + 30, took


def test_a_service_waiting_for_the_broker_starts_when_it_arrives(tmp_path, redis_url):
    port, health = free_port(), free_port()
    proc, log = spawn(tmp_path, "modelbus_aggregator.app",
                      {"MODELBUS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
                       "MODELBUS_REDIS_URL": redis_url, "MODELBUS_HEALTH_PORT": str(health)})
    group = ProcessGroup(tmp_path / "broker")
    try:
        wait_for_line(proc, log, "waiting for the broker")
        start_broker(group, port=port)
        wait_for(lambda: http_ok(f"http://127.0.0.1:{health}/readyz"), "aggregator ready", 90,
                 proc)
        assert "answered after" in log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        group.stop_all()
    assert "Traceback" not in log.read_text(errors="replace")


def test_unreachable_redis_is_named_and_ends_the_start_up(tmp_path, kafka_bootstrap):
    port = dead_port()
    proc, log = spawn(tmp_path, "modelbus_aggregator.app",
                      {"MODELBUS_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                       "MODELBUS_REDIS_URL": f"redis://:hunter2secret@127.0.0.1:{port}/0",
                       "MODELBUS_STARTUP_TIMEOUT_S": "8"})
    try:
        code = proc.wait(timeout=90)
    finally:
        proc.kill()
    text = log.read_text(errors="replace")
    assert code == 1, text
    assert f"Redis at 127.0.0.1:{port}" in messages(log)[-1]["msg"]
    assert "hunter2secret" not in text
    assert "Traceback" not in text


def test_unreachable_database_is_named_and_sigterm_ends_the_wait(tmp_path, kafka_bootstrap):
    port = dead_port()
    proc, log = spawn(tmp_path, "modelbus_audit.app",
                      {"MODELBUS_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                       "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/audit"})
    code, took = terminate_while_waiting(proc, log, "waiting for audit's dependencies")
    text = log.read_text(errors="replace")
    assert code == 0 and took < DRAIN_BOUND_S, text
    waiting = next(m["msg"] for m in messages(log) if "audit's dependencies" in m["msg"])
    assert f"127.0.0.1:{port}" in waiting or "Connect" in waiting, waiting
    assert "Traceback" not in text


def test_a_started_service_of_another_consumer_kind_stops_cleanly(tmp_path, kafka_bootstrap,
                                                                  redis_url):
    """The gateway's consumer is its reply listener, not an EventConsumer: a SIGTERM after
    start-up drains and exits 0 without a traceback all the same."""
    health = free_port()
    proc, log = spawn(tmp_path, "modelbus_gateway.app",
                      {"MODELBUS_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                       "MODELBUS_REDIS_URL": redis_url, "MODELBUS_HEALTH_PORT": str(health)})
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{health}/readyz"), "gateway ready", 90, proc)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    text = log.read_text(errors="replace")
    assert code == 0, text
    assert "Traceback" not in text and "Unclosed" not in text, text
    assert "gateway stopped" in text
