"""CPU time of every process of the stack (modelbus services, broker, Redis), via psutil."""

from __future__ import annotations

import psutil


def find_redis_pids(port: int) -> list[int]:
    pids = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if ("redis-server" in cmd or "valkey-server" in cmd) and (
                f":{port}" in cmd or f"--port {port}" in cmd or port == 6379
            ):
                pids.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pids


class CpuMeter:
    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}

    def snapshot(self) -> dict[str, float]:
        out = {}
        for name, proc in self.procs.items():
            try:
                times = proc.cpu_times()
                out[name] = times.user + times.system
            except psutil.NoSuchProcess:
                out[name] = 0.0
        return out

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: after[k] - before.get(k, 0.0) for k in after}
