"""Health and metrics endpoints: ``/healthz`` (alive), ``/readyz`` (consuming), ``/metrics``.

Served by uvicorn inside the service's own event loop; probes in k8s point here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def health_app(service: str, ready: Callable[[], bool], extra_routes: list | None = None) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"service": service, "status": "alive"})

    async def readyz(_: Request) -> Response:
        ok = ready()
        return JSONResponse(
            {"service": service, "status": "ready" if ok else "starting"},
            status_code=200 if ok else 503,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        *(extra_routes or []),
    ]
    return Starlette(routes=routes)


async def serve_http(app, host: str, port: int) -> tuple[uvicorn.Server, asyncio.Task]:
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # the service runner owns signals
    task = asyncio.create_task(server.serve())
    return server, task
