"""In-process simulator for tests: `SimulatorServer`, usable as a sync or async context
manager.  Runs uvicorn on a pre-bound (free by default) port in a daemon thread and
exposes `base_url` (plus per-SDK base URLs) and thin admin helpers that call the
`/_sim/` API over HTTP (stdlib urllib, so no client dependency).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

from .app import build_app, make_server
from .behaviour import SimScript, load_script


class SimulatorServer:
    def __init__(
        self,
        script: SimScript | str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 10.0,
    ) -> None:
        if isinstance(script, (str, Path)):
            script = load_script(script)
        self.app = build_app(script)
        self.host = host
        self._port = port
        self._timeout = startup_timeout_s
        self._server = None
        self._thread: threading.Thread | None = None

    # -- addresses ---------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    @property
    def gemini_base_url(self) -> str:
        return self.base_url

    @property
    def state(self):
        """The live `SimState` (only safe to read; mutate through the admin helpers)."""
        return self.app.state.sim

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> Self:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._port = sock.getsockname()[1]
        self._server = make_server(self.app, self.host, self._port)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name="modelbus-simulator",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("simulator failed to start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # -- admin helpers (blocking; use asyncio.to_thread from async code if needed) --
    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def set_behaviour(self, model: str, **behaviour: Any) -> dict:
        return self._admin("PUT", f"/_sim/models/{model}", behaviour)

    def set_rules(self, **switches: bool) -> dict:
        """Switch request rules, e.g. ``set_rules(**{"openai.max_stop": False})``."""
        return self._admin("PUT", "/_sim/rules", switches)

    def delete_behaviour(self, model: str) -> dict:
        return self._admin("DELETE", f"/_sim/models/{model}")

    def reset(self) -> dict:
        return self._admin("POST", "/_sim/reset")

    def stats(self) -> dict:
        return self._admin("GET", "/_sim/stats")
