"""Stale pooled connections, over real HTTP: a local HTTP/1.1 server (asyncio streams) that
reads a request on a reused keep-alive connection and closes without answering — what a
provider front end does when its idle timeout fires as the request arrives. The call goes
through on one fresh connection, a fresh connection's failure is an ordinary transport
error (no second retry), the shared circuit breaker (Redis) is charged only for the retried
call's own outcome, and the keep-alive setting reaches the connection pool."""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid
from collections.abc import Callable
from typing import Self

import orjson
import pytest
from modelbus_adapter_worker.adapters.openai_chat import OpenAIChatAdapter
from modelbus_adapter_worker.app import build_transport
from modelbus_adapter_worker.errors import ProviderError
from modelbus_adapter_worker.executor import Executor
from modelbus_adapter_worker.settings import WorkerSettings
from modelbus_adapter_worker.transport import HttpTransport
from modelbus_runtime.circuit import CircuitBreakers
from modelbus_schemas import RetrySpec
from prometheus_client import REGISTRY
from worker_wire_helpers import task

BODY = orjson.dumps({"model": "gpt-4o", "choices": [
    {"finish_reason": "stop", "message": {"role": "assistant", "content": "hello"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
          b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)

# (requests read on this connection, requests read in all) -> answer this one?
Policy = Callable[[int, int], bool]


def first_on_each_connection(on_connection: int, total: int) -> bool:
    """Every reused connection is stale: its second request is dropped."""
    return on_connection == 1


def always(on_connection: int, total: int) -> bool:
    return True


def never(on_connection: int, total: int) -> bool:
    return False


def only_the_very_first(on_connection: int, total: int) -> bool:
    """The provider answers once, then drops every request, fresh connections included."""
    return total == 1


class DroppingServer:
    """HTTP/1.1 with keep-alive; a request the policy refuses is read and its connection
    closed unanswered (with ``reset``: aborted, the client sees a TCP reset)."""

    def __init__(self, policy: Policy, *, reset: bool = False) -> None:
        self.policy, self.reset = policy, reset
        self.requests = 0
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.connections += 1
        on_connection = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                on_connection += 1
                self.requests += 1
                await reader.readexactly(_content_length(head))
                if not self.policy(on_connection, self.requests):
                    if self.reset:  # linger 0: close() sends RST instead of FIN
                        writer.get_extra_info("socket").setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _stale_retries() -> float:
    return REGISTRY.get_sample_value("modelbus_provider_stale_retries_total",
                                     {"provider": "openai"}) or 0.0


ADAPTER = OpenAIChatAdapter("k")


def _request():
    return ADAPTER.build(task("openai", "gpt-4o"))


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_a_request_on_a_stale_pooled_connection_goes_through_on_a_fresh_one(reset):
    async with DroppingServer(first_on_each_connection, reset=reset) as server:
        transport = HttpTransport(server.url, keepalive_s=30)
        try:
            assert (await transport.call(ADAPTER, _request(), 5)).text == "hello"
            before = _stale_retries()
            completion = await transport.call(ADAPTER, _request(), 5)  # the pooled one
        finally:
            await transport.close()
    assert completion.text == "hello"
    assert server.requests == 3  # the second call: the stale request and its one retry
    assert server.connections == 2
    assert _stale_retries() == before + 1


async def test_a_fresh_connection_failing_after_the_stale_one_is_not_retried_again():
    async with DroppingServer(only_the_very_first) as server:
        transport = HttpTransport(server.url, keepalive_s=30)
        try:
            await transport.call(ADAPTER, _request(), 5)
            with pytest.raises(ProviderError) as failed:
                await transport.call(ADAPTER, _request(), 5)
        finally:
            await transport.close()
    assert failed.value.code == "transport" and failed.value.retryable
    assert server.requests == 3  # one answered; the stale one and one retry, no more


async def test_a_failure_on_a_fresh_connection_is_no_stale_connection():
    async with DroppingServer(never) as server:
        transport = HttpTransport(server.url, keepalive_s=30)
        before = _stale_retries()
        try:
            with pytest.raises(ProviderError) as failed:
                await transport.call(ADAPTER, _request(), 5)
        finally:
            await transport.close()
    assert failed.value.code == "transport"
    assert server.requests == 1 and _stale_retries() == before


async def _run_twice(server: DroppingServer, redis_client):
    """Two single-attempt runs through the executor, a breaker that opens on one failure."""
    breakers = CircuitBreakers(redis_client, failure_threshold=1, window_s=30, open_s=30,
                               prefix=f"test:cb:{uuid.uuid4().hex[:8]}")
    transport = HttpTransport(server.url, keepalive_s=30)
    executor = Executor(ADAPTER, transport, breakers=breakers,
                        default_retry=RetrySpec(max_attempts=1))
    try:
        runs = [await executor.run(task("openai", "gpt-4o")) for _ in range(2)]
    finally:
        await transport.close()
    return runs, await breakers.state("openai", "gpt-4o")


async def test_the_breaker_is_not_charged_for_a_stale_connection(redis_client):
    async with DroppingServer(first_on_each_connection) as server:
        runs, state = await _run_twice(server, redis_client)
    assert [run.stop for run in runs] == ["ok", "ok"]
    assert [len(run.attempts) for run in runs] == [1, 1]
    assert state == "closed"


async def test_the_breaker_is_charged_when_the_fresh_retry_fails_too(redis_client):
    async with DroppingServer(only_the_very_first) as server:
        runs, state = await _run_twice(server, redis_client)
    assert [run.stop for run in runs] == ["ok", "retries_exhausted"]
    assert runs[1].error.code == "transport"
    assert state == "open"


async def _connections_after_idle(make: Callable[[str], HttpTransport], idle_s: float) -> int:
    """Connections the server saw for two calls ``idle_s`` apart."""
    async with DroppingServer(always) as server:
        transport = make(server.url)
        try:
            await transport.call(ADAPTER, _request(), 5)
            await asyncio.sleep(idle_s)
            await transport.call(ADAPTER, _request(), 5)
        finally:
            await transport.close()
    assert server.requests == 2
    return server.connections


async def test_the_keepalive_setting_reaches_the_connection_pool(monkeypatch):
    assert WorkerSettings().provider_keepalive_s < 5  # below common servers' idle timeout

    def built(url: str) -> HttpTransport:
        return build_transport(WorkerSettings(provider="openai", base_url=url))

    monkeypatch.setenv("MODELBUS_PROVIDER_KEEPALIVE_S", "0.1")
    assert await _connections_after_idle(built, 0.4) == 2  # idle past it: a new connection
    monkeypatch.setenv("MODELBUS_PROVIDER_KEEPALIVE_S", "30")
    assert await _connections_after_idle(built, 0.4) == 1  # within it: the pooled one
