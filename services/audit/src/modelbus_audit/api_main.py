"""The query API on its own (no Kafka): ``modelbus-audit-api`` / ``python -m
modelbus_audit.api_main``. Serves :func:`modelbus_audit.api.create_api` on
``MODELBUS_HEALTH_HOST``:``MODELBUS_HEALTH_PORT`` over the store of ``DATABASE_URL``, so the
API scales apart from the consumers. Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import signal

from modelbus_runtime.health import serve_http
from modelbus_runtime.logging import configure_logging

from modelbus_audit.api import create_api
from modelbus_audit.db import database_url_from_env
from modelbus_audit.settings import AuditSettings
from modelbus_audit.store import AuditStore

DEFAULT_PORT = 8088


async def serve(settings: AuditSettings, stop: asyncio.Event) -> None:
    store = await AuditStore.open(database_url_from_env(), ring=settings.signing_ring())
    app = create_api(store, settings.api_keys())
    server, task = await serve_http(app, settings.health_host,
                                    settings.health_port or DEFAULT_PORT)
    try:
        await stop.wait()
    finally:
        server.should_exit = True
        await task
        await store.close()


def main() -> None:
    settings = AuditSettings()
    configure_logging("audit-api", settings.log_level)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
