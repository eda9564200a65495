"""The service lifecycle every ``app.py`` uses: start, serve health, wait for a signal, drain.

An ``app.py`` builds a :class:`Service` (its consumers and any extra resources) in a
``build(ctx)`` coroutine and calls :func:`run_service`. SIGTERM/SIGINT stop fetching,
finish in-flight work within ``drain_timeout_s`` (all consumers at once; what is unfinished
then is cancelled and left uncommitted), commit, leave the groups and close everything in
order, and the process exits with code 0.

Start-up honours the same signals: a service waiting for its broker, Redis or database
(:mod:`modelbus_runtime.startup`) stops at once, closing what it had started, and exits 0;
one still not started after ``startup_timeout_s`` (``MODELBUS_STARTUP_TIMEOUT_S``) logs
one line saying what it waited for and exits 1.
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
from modelbus_runtime.redis import built_clients, where
from modelbus_runtime.settings import RuntimeSettings
from modelbus_runtime.startup import StartupTimeout, StartupWait, one_line, until_started
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


@dataclass
class _Started:
    """What a start-up has brought up so far, so a stop or time-out mid-way closes it."""

    producer: EventProducer | None = None
    service: Service | None = None
    consumers: list[EventConsumer] = field(default_factory=list)
    http: tuple | None = None

    async def close(self, *, drained: bool = False) -> None:
        """Close everything; ``drained``: the consumers were stopped already."""
        if not drained:
            await asyncio.gather(*(consumer.stop() for consumer in self.consumers))
            built = self.service.consumers if self.service else []
            await asyncio.gather(*(c.discard() for c in built
                                   if c not in self.consumers and hasattr(c, "discard")))
        for close in reversed(self.service.closers if self.service else []):
            await close()
        if self.producer:
            await self.producer.stop()
        if self.http:
            self.http[0].should_exit = True
            await self.http[1]


async def _start(name: str, settings: RuntimeSettings, build: Builder, role: str | None,
                 wait: StartupWait, started: _Started) -> Service:
    broker = f"the broker at {settings.kafka_bootstrap_servers}"
    if settings.ensure_topics:
        await wait.retry(broker, lambda: ensure_topics(settings, all_topics(), attempts=1))
    started.producer = producer = EventProducer(settings, name, role=role)
    await wait.retry(broker, producer.start)
    ctx = ServiceContext(name, settings, producer,
                         DeadLetterPublisher(producer, name, settings.max_message_bytes))
    before = built_clients()
    started.service = service = await wait.retry(f"{name}'s dependencies", lambda: build(ctx))
    for client in built_clients() - before:  # Redis connects lazily: ask it once now
        await wait.retry(where(client), client.ping)
    for consumer in service.consumers:
        await wait.retry(broker, consumer.start)
        started.consumers.append(consumer)
    if settings.health_port:
        app = health_app(name, lambda: all(c.ready for c in service.consumers), service.routes)
        started.http = await serve_http(app, settings.health_host, settings.health_port)
    return service


async def serve(name: str, settings: RuntimeSettings, build: Builder, stop: asyncio.Event,
                *, role: str | None = None) -> None:
    """Run one service until ``stop``; it signs what it publishes as ``role`` (its name
    unless given: a service named for its provider still signs as ``adapter-worker``).

    Start-up waits for unreachable dependencies (:mod:`modelbus_runtime.startup`) and
    ends early, closing what it started, when ``stop`` is set; past
    ``startup_timeout_s`` it raises :class:`StartupTimeout`."""
    wait = StartupWait(name, settings.startup_timeout_s)
    started = _Started()
    try:
        service = await until_started(wait, stop,
                                      _start(name, settings, build, role, wait, started))
    except BaseException:
        await _close_bounded(name, started, settings.drain_timeout_s)
        raise
    if service is None:
        log.info("%s stopped while starting (at: %s)", name, wait.step)
        await _close_bounded(name, started, settings.drain_timeout_s)
        return
    log.info("%s started", name)
    try:
        await stop.wait()
    finally:
        log.info("%s stopping: draining in-flight work", name)
        began = time.monotonic()
        # every consumer drains at once: the bound is drain_timeout_s, not one per consumer
        await asyncio.gather(*(consumer.stop() for consumer in service.consumers))
        log.info("%s drained in %.1fs", name, time.monotonic() - began)
        await started.close(drained=True)
        log.info("%s stopped", name)


async def _close_bounded(name: str, started: _Started, bound: float) -> None:
    """Close a half-started service within ``bound`` seconds, whatever its dependencies do."""
    try:
        await asyncio.wait_for(started.close(), bound)
    except Exception as exc:  # noqa: BLE001 - exiting anyway; say what was left
        log.warning("%s: closing a half-started service: %s", name, one_line(exc))


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

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a declared dependency
        runner = asyncio.run
    try:
        runner(main())
    except StartupTimeout as exc:  # one line, no traceback: nothing here is a bug
        log.error("%s", exc)
        raise SystemExit(1) from None
