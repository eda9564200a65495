"""The streaming tests' stack: the provider-surface package's stack (simulator, a worker for
each of the four providers, router, aggregator, gateway with one API key), reused as it is,
with every chat model scripted to stream a token every ``CHUNK_DELAY_MS`` for about 2 s, and
warmed up by one streamed request per provider on the Kafka path and one plain (not
streamed) call per provider through the gateway: the first request of a fresh stack waits
for consumer group joins, connections and first imports, seconds no later request pays."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from modelbus_testing.simulator import simulate

from tests.streaming.stream_client import stream_request, streaming_behaviour
from tests.surface import conftest as surface

surface_stack = surface.surface_stack  # the same package-scoped stack fixture, for this package


async def _warm_up(stack: surface.SurfaceStack) -> None:
    ask = [{"role": "user", "content": "warm up"}]
    await asyncio.gather(*(stream_request(stack, {"task": f"chat-{provider}", "messages": ask})
                           for provider in surface.CHAT_MODELS))
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60,
                                 headers={"authorization": f"Bearer {stack.api_key}"}) as http:
        for provider in surface.CHAT_MODELS:
            answer = await http.post("/v1/chat/completions",
                                     json={"model": f"chat-{provider}", "messages": ask})
            answer.raise_for_status()


@pytest.fixture(scope="package")
def stream_stack(surface_stack) -> surface.SurfaceStack:
    for model in surface.CHAT_MODELS.values():
        simulate(surface_stack.stack, model, **streaming_behaviour())
    asyncio.run(_warm_up(surface_stack))
    return surface_stack
