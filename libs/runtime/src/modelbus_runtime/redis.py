"""Redis client construction: short socket timeouts, and one round trip per loop iteration.

Timeouts are short so an outage fails fast, never hangs. Retries are off: every caller has
its own defined behaviour for an outage (retry in place, degrade to a local bound, fail
closed), which a hidden client-side retry would only delay. ``max_connections`` gives a
bounded pool that makes bursts wait briefly for a connection instead of failing (a worker
with a thousand calls in flight needs that).

:class:`CoalescingRedis` sends every single command that concurrent tasks issue in the same
event-loop iteration as one pipeline: one connection checkout, one write, one read, instead
of one each per command. Under load a service's handlers run side by side, so a fetched
batch of fifty messages costs a few round trips rather than a hundred and fifty (profiles
put a fifth of each service's CPU in those per-command socket writes). Each caller still
awaits its own reply or its own error; scripts (EVALSHA, with the NOSCRIPT fallback) go
the same way. Explicit ``pipeline()`` blocks and MULTI/EXEC transactions are untouched.

Clients connect lazily; every client :func:`build_redis` makes is remembered (weakly), so
the service runner can check, before it reports a service started, that the Redis its
builder asked for answers (:func:`built_clients`, :func:`where`).
"""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from modelbus_runtime.settings import RuntimeSettings

_Queued = tuple[tuple, dict, asyncio.Future]
_built: weakref.WeakSet = weakref.WeakSet()


class CoalescingRedis(aioredis.Redis):
    """A ``redis.asyncio.Redis`` whose single commands share pipelines (see module doc)."""

    max_batch = 512

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._queued: list[_Queued] = []
        self._flush_scheduled = False
        self._sending: set[asyncio.Task] = set()

    async def execute_command(self, *args, **options):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queued.append((args, options, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush_queued)
        return await future

    def _flush_queued(self) -> None:
        self._flush_scheduled = False
        while self._queued:
            batch = self._queued[:self.max_batch]
            del self._queued[:self.max_batch]
            task = asyncio.ensure_future(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Queued]) -> None:
        live = [queued for queued in batch if not queued[2].done()]  # callers may be gone
        if not live:
            return
        try:
            pipe = self.pipeline(transaction=False)
            for args, options, _ in live:
                pipe.execute_command(*args, **options)
            replies = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:  # the loop is shutting down: so are the callers
            for _, _, future in live:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
            for _, _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), reply in zip(live, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


def build_redis(settings: RuntimeSettings, max_connections: int | None = None) -> CoalescingRedis:
    timeout = settings.redis_socket_timeout_s
    common = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 10,
        "retry": Retry(NoBackoff(), 0),
    }
    if max_connections:
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=max_connections, timeout=max(1.0, timeout * 2),
            **common,
        )
        client = CoalescingRedis(connection_pool=pool)
    else:
        client = CoalescingRedis.from_url(settings.redis_url, decode_responses=False, **common)
    _built.add(client)
    return client


def built_clients() -> set[CoalescingRedis]:
    """The clients :func:`build_redis` made that are still alive."""
    return set(_built)


def where(client: aioredis.Redis) -> str:
    """``Redis at host:port`` of a client, never its password."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"Redis at {kwargs['path']}"
    return f"Redis at {kwargs.get('host', '?')}:{kwargs.get('port', 6379)}"
