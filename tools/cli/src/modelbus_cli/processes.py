"""Starting and stopping the local stack's processes: broker, Redis, simulator, services.

Used by ``modelbus run`` and by the test fixtures, so the demo and the tests start the
same real components the same way. Every child writes its log to ``<workdir>/logs``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the child when its parent dies, so a killed test run or a
    crashed ``modelbus run`` never leaves brokers and services behind."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(check, what: str, timeout: float = 30.0, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} while starting")
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return resp.status == 200
    except OSError:
        return False


@dataclass
class Managed:
    name: str
    proc: subprocess.Popen
    log_path: Path
    health_url: str | None = None

    def stop(self, timeout: float = 25.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``: longer than a service's default drain
        bound (20 s), so a stop never cuts a drain short."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class ProcessGroup:
    workdir: Path
    children: list[Managed] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              health_url: str | None = None) -> Managed:
        log_path = self.workdir / "logs" / f"{name}.log"
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, start_new_session=True,
                # runs before exec in the child, touching no lock a thread may hold
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        child = Managed(name, proc, log_path, health_url)
        self.children.append(child)
        return child

    def python_module(self, name: str, module: str, env: dict[str, str],
                      health_url: str | None = None) -> Managed:
        return self.spawn(name, [sys.executable, "-m", module], env, health_url)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
