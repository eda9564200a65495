"""Start-up against dependencies that may not be there yet: wait, say so once, give up cleanly.

A service may start before its broker, Redis or database can be reached (a whole stack
starting at once, a broker restarting). Each start-up step that needs one runs through
:meth:`StartupWait.retry`: a failure that means "unreachable" (a socket error, a Kafka
error, a Redis connection error or timeout, a :class:`TransientInfraError`, a database
driver's ``OperationalError``, or anything caused by one of these) is retried with
exponential backoff (0.25 s doubling to 5 s, with jitter) until ``startup_timeout_s`` has
passed since the process began starting. Any other error is a bug or a bad setting and is
raised at once.

Log volume stays bounded: one warning when a wait begins, then one more only when the
reason changes or after doubling intervals (10 s, 20 s, 40 s, …), one line when the
dependency answers; during a step the client libraries' own connection errors (aiokafka
logs one per attempt) are held back, and until the service has started any other line
below ERROR is written once only (a timer built by the service that fails in a loop while
Redis is down says so once). When time is up,
:class:`StartupTimeout` carries a one-line reason; the service runner logs it and the
process exits with code 1, without a traceback. Stopping (SIGTERM) at any point is handled
by the runner, which cancels the start-up.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

from aiokafka.errors import KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from modelbus_runtime.errors import TransientInfraError

log = logging.getLogger(__name__)

T = TypeVar("T")

_UNREACHABLE = (OSError, KafkaError, RedisConnectionError, RedisTimeoutError,
                TransientInfraError, asyncio.TimeoutError)
_DRIVER_ERRORS = {"OperationalError", "InterfaceError"}  # DB-API names of "cannot connect"
_QUIET_LOGGERS = ("aiokafka", "aiokafka.conn", "aiokafka.client")


class StartupTimeout(Exception):
    """The service did not start within its start-up timeout; the message is one line."""


def unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says a dependency cannot be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNREACHABLE) or type(current).__name__ in _DRIVER_ERRORS:
            return True
        current = current.__cause__ or current.__context__
    return False


def one_line(exc: BaseException, limit: int = 240) -> str:
    text = " ".join(str(exc).split()) or "no detail"
    name = type(exc).__name__
    text = text if text.startswith(name) else f"{name}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Once(logging.Filter):
    """Lets each distinct (logger, message) through once: a component built during start-up
    that logs the same failure in a loop (a timer finding Redis down) writes it once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class _HoldBack(logging.Filter):
    """Drops library records below CRITICAL while a wait is on (our own line says why)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.CRITICAL


class StartupWait:
    """Retries start-up steps until ``timeout_s`` from creation; see the module doc."""

    first_delay_s = 0.25
    max_delay_s = 5.0
    first_repeat_s = 10.0

    def __init__(self, service: str, timeout_s: float) -> None:
        self.service = service
        self.timeout_s = timeout_s
        self.began = time.monotonic()
        self.step = "starting"
        self.reason: str | None = None
        self.lines = 0  # warnings written, for the tests' bound
        self._last_key: tuple[str, str] | None = None
        self._last_log = 0.0
        self._repeat_s = self.first_repeat_s

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.began

    @property
    def remaining(self) -> float:
        return max(0.0, self.timeout_s - self.elapsed)

    async def retry(self, step: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` until it succeeds, retrying while its failure means unreachable."""
        self.step = step
        attempt = 0
        waited_from: float | None = None
        while True:
            try:
                with _quiet():
                    result = await call()
            except Exception as exc:
                if not unreachable(exc):
                    raise
                self.reason = f"{step}: {one_line(exc)}"
                self._note(step, exc)
                waited_from = waited_from if waited_from is not None else time.monotonic()
                delay = min(self.max_delay_s, self.first_delay_s * 2 ** attempt)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                attempt += 1
                continue
            if waited_from is not None:
                log.info("%s: %s answered after %.1fs", self.service, step,
                         time.monotonic() - waited_from)
                self.reason = None
            return result

    def timed_out(self) -> StartupTimeout:
        what = self.reason or f"still at: {self.step}"
        return StartupTimeout(
            f"{self.service}: not started within {self.timeout_s:g}s "
            f"(MODELBUS_STARTUP_TIMEOUT_S), giving up; {what}")

    def _note(self, step: str, exc: BaseException) -> None:
        key = (step, type(exc).__name__)
        now = time.monotonic()
        if key == self._last_key and now - self._last_log < self._repeat_s:
            return
        if key == self._last_key:
            self._repeat_s *= 2
        else:
            self._repeat_s = self.first_repeat_s
        self._last_key, self._last_log = key, now
        self.lines += 1
        log.warning("%s: waiting for %s (%s); retrying with backoff for up to %.0fs more",
                    self.service, step, one_line(exc), self.remaining)


@contextmanager
def _quiet() -> Iterator[None]:
    hold = _HoldBack()
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    for logger in loggers:
        logger.addFilter(hold)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(hold)


async def until_started(wait: StartupWait, stop: asyncio.Event, start: Awaitable[T]) -> T | None:
    """Run ``start`` until it completes (its result), ``stop`` is set (None) or the wait's
    time is up (:class:`StartupTimeout`); an unfinished start is cancelled."""
    task = asyncio.ensure_future(start)
    stopped = asyncio.ensure_future(stop.wait())
    once = _Once()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(once)
    try:
        done, _ = await asyncio.wait({task, stopped}, timeout=wait.remaining,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        for handler in handlers:
            handler.removeFilter(once)
    if task in done:
        return task.result()
    task.cancel()
    with suppress(asyncio.CancelledError, Exception):  # abandoned on purpose
        await task
    if stop.is_set():
        return None
    raise wait.timed_out()
