"""The streaming tests' stack: the provider-surface package's stack (simulator, a worker for
each of the four providers, router, aggregator, gateway with one API key), reused as it is,
with every chat model scripted to stream a token every ``CHUNK_DELAY_MS`` for about 2 s, and
warmed up by one streamed request per provider (the first request of a fresh stack waits
for consumer group joins and connections, seconds that no later request pays)."""

from __future__ import annotations

import asyncio

import pytest
from modelbus_testing.simulator import simulate

from tests.streaming.stream_client import stream_request, streaming_behaviour
from tests.surface import conftest as surface

surface_stack = surface.surface_stack  # the same package-scoped stack fixture, for this package


async def _warm_up(stack: surface.SurfaceStack) -> None:
    ask = [{"role": "user", "content": "warm up"}]
    await asyncio.gather(*(stream_request(stack, {"task": f"chat-{provider}", "messages": ask})
                           for provider in surface.CHAT_MODELS))


@pytest.fixture(scope="package")
def stream_stack(surface_stack) -> surface.SurfaceStack:
    for model in surface.CHAT_MODELS.values():
        simulate(surface_stack.stack, model, **streaming_behaviour())
    asyncio.run(_warm_up(surface_stack))
    return surface_stack
