"""Application assembly and the `modelbus-simulator` console script.

`build_app(script)` returns the Starlette app serving the OpenAI, Anthropic and Gemini
endpoints plus the `/_sim/` admin API, all sharing one `SimState` (`app.state.sim`).
`make_server` wraps it in a tuned uvicorn server (uvloop + httptools when installed, no
access log, short graceful-shutdown timeout so hanging calls never block exit).
`main` is the CLI: `modelbus-simulator --host 127.0.0.1 --port 8900 [--script s.yaml]`.
"""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn
from starlette.applications import Starlette

from . import admin, anthropic_api, embeddings, gemini_api, openai_api
from .behaviour import ScriptError, SimScript, SimState, load_script


def build_app(script: SimScript | None = None) -> Starlette:
    state = SimState(script)
    routes = (
        admin.routes(state)
        + openai_api.routes(state)
        + embeddings.routes(state)
        + anthropic_api.routes(state)
        + gemini_api.routes(state)
    )
    app = Starlette(routes=routes)
    app.state.sim = state
    app.add_middleware(CallsInFlight, state=state)
    return app


class CallsInFlight:
    """Counts provider calls (every path outside ``/_sim/``) from arrival until answered."""

    def __init__(self, app, state: SimState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim/"):
            await self.app(scope, receive, send)
            return
        self.state.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.state.in_flight -= 1


class SimUvicornServer(uvicorn.Server):
    """uvicorn server that can announce its bound address once it is listening."""

    def __init__(self, config: uvicorn.Config, announce: bool = False) -> None:
        super().__init__(config)
        self.announce = announce
        self.bound_port: int | None = None

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        state = getattr(getattr(self.config.app, "state", None), "sim", None)
        if state is not None:
            state.release.set()  # answer hanging calls so connections can close promptly
        await super().shutdown(sockets=sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        for server in self.servers:
            for sock in server.sockets or ():
                self.bound_port = sock.getsockname()[1]
                break
        if self.started and self.announce:
            print(f"simulator listening on http://{self.config.host}:{self.bound_port}", flush=True)


def make_server(
    app: Starlette,
    host: str = "127.0.0.1",
    port: int = 8900,
    log_level: str = "warning",
    announce: bool = False,
    graceful_shutdown_s: float = 1.0,
) -> SimUvicornServer:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",
        http="auto",
        lifespan="off",
        access_log=False,
        log_level=log_level,
        timeout_graceful_shutdown=graceful_shutdown_s,
        backlog=4096,
    )
    return SimUvicornServer(config, announce=announce)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="modelbus-simulator",
        description="LLM provider simulator (OpenAI, Anthropic, Gemini wire formats).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900, help="0 picks a free port")
    parser.add_argument("--script", help="YAML behaviour script")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    try:
        script = load_script(args.script) if args.script else None
    except (ScriptError, OSError) as exc:
        print(f"modelbus-simulator: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    server = make_server(build_app(script), args.host, args.port, args.log_level, announce=True)
    server.run()


if __name__ == "__main__":
    main()
