"""modelbus provider simulator: OpenAI, Anthropic and Gemini wire formats over real HTTP,
with scripted per-model latency, replies and failures."""

from .app import build_app, main, make_server
from .behaviour import (
    Behaviour,
    Failure,
    ScriptError,
    SimScript,
    SimState,
    load_script,
    parse_script,
)
from .server import SimulatorServer

__all__ = [
    "Behaviour",
    "Failure",
    "ScriptError",
    "SimScript",
    "SimState",
    "SimulatorServer",
    "build_app",
    "load_script",
    "main",
    "make_server",
    "parse_script",
]
