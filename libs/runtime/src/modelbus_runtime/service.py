"""The service lifecycle every ``app.py`` uses: start, serve health, wait for a signal, drain.

An ``app.py`` builds a :class:`Service` (its consumers and any extra resources) in a
``build(ctx)`` coroutine and calls :func:`run_service`. SIGTERM/SIGINT stop fetching,
finish in-flight work within ``drain_timeout_s`` (all consumers at once; what is unfinished
then is cancelled and left uncommitted), commit, leave the groups and close everything in
order, and the process exits with code 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from modelbus_schemas.topics import all_topics

from modelbus_runtime.consumer import EventConsumer
from modelbus_runtime.dlq import DeadLetterPublisher
from modelbus_runtime.health import health_app, serve_http
from modelbus_runtime.kafka import EventProducer, ensure_topics
from modelbus_runtime.logging import configure_logging
from modelbus_runtime.settings import RuntimeSettings
from modelbus_runtime.tracing import configure_tracing

log = logging.getLogger(__name__)

Closer = Callable[[], Awaitable[None]]


@dataclass
class ServiceContext:
    name: str
    settings: RuntimeSettings
    producer: EventProducer
    dlq: DeadLetterPublisher


@dataclass
class Service:
    consumers: list[EventConsumer]
    closers: list[Closer] = field(default_factory=list)
    routes: list = field(default_factory=list)


Builder = Callable[[ServiceContext], Awaitable[Service]]


async def serve(name: str, settings: RuntimeSettings, build: Builder, stop: asyncio.Event,
                *, role: str | None = None) -> None:
    """Run one service until ``stop``; it signs what it publishes as ``role`` (its name
    unless given: a service named for its provider still signs as ``adapter-worker``)."""
    if settings.ensure_topics:
        await ensure_topics(settings, all_topics())
    producer = EventProducer(settings, name, role=role)
    await producer.start()
    ctx = ServiceContext(name, settings, producer, DeadLetterPublisher(producer, name, settings.max_message_bytes))
    service = await build(ctx)
    for consumer in service.consumers:
        await consumer.start()
    http = None
    if settings.health_port:
        app = health_app(name, lambda: all(c.ready for c in service.consumers), service.routes)
        http = await serve_http(app, settings.health_host, settings.health_port)
    log.info("%s started", name)
    try:
        await stop.wait()
    finally:
        log.info("%s stopping: draining in-flight work", name)
        started = time.monotonic()
        # every consumer drains at once: the bound is drain_timeout_s, not one per consumer
        await asyncio.gather(*(consumer.stop() for consumer in service.consumers))
        log.info("%s drained in %.1fs", name, time.monotonic() - started)
        for close in reversed(service.closers):
            await close()
        await producer.stop()
        if http:
            http[0].should_exit = True
            await http[1]
        log.info("%s stopped", name)


def dump_tasks() -> None:
    """SIGUSR1: log where every asyncio task of the process is waiting (for a stuck one)."""
    import io

    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(limit=12, file=out)
        log.warning("task %s:\n%s", task.get_name(), out.getvalue())


def run_service(name: str, settings: RuntimeSettings, build: Builder) -> None:
    """Entry point body of every service's ``main()``."""
    configure_logging(name, settings.log_level)
    configure_tracing(name)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
        await serve(name, settings, build, stop)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a declared dependency
        asyncio.run(main())
