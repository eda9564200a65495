"""The one mock provider every target calls: the project's simulator, OpenAI wire format.

It answers at once by default; :func:`set_latency` switches it to the slow mode (every
answer after 1.5 s) and back, through the simulator's admin API, for all models at once.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from modelbus_cli.stack import Stack

MODEL = "gpt-4o-mini"
SLOW_MS = 1500


def start(workdir: Path) -> Stack:
    """The simulator, in a process group of its own under ``workdir`` (``.simulator_url``)."""
    stack = Stack(workdir)
    stack.start_simulator()
    return stack


def set_latency(base_url: str, latency_ms: float) -> None:
    """Every answer after ``latency_ms`` (0: at once)."""
    request = urllib.request.Request(
        base_url + "/_sim/models/default", method="PUT",
        data=json.dumps({"latency_ms": latency_ms}).encode(),
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
