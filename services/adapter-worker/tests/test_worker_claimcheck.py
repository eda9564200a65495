"""Claim-check references resolved by the worker before the provider call, within the
task's tenant, from a real SQLite blob store: the provider gets the stored image, the result
never carries it, and a missing or tampered blob is a terminal ``invalid_request`` result
with no provider call."""

from __future__ import annotations

import base64

import pytest
from modelbus_adapter_worker.adapters import Completion, build_adapter
from modelbus_adapter_worker.executor import Executor
from modelbus_adapter_worker.outcome import result_of
from modelbus_runtime.claimcheck import check_out
from modelbus_runtime.claimcheck_store import blobs, open_blob_store
from modelbus_schemas import ChatMessage, ErrorCode
from modelbus_schemas.identity import scoped_id
from worker_wire_helpers import task

DATA = base64.b64encode(b"\x89PNG" + bytes(300)).decode()
IMAGE = {"type": "image", "data": DATA, "media_type": "image/png"}


class Recorder:
    def __init__(self) -> None:
        self.requests = []

    async def call(self, adapter, request, timeout_s, sink=None):
        self.requests.append(request)
        return Completion("a cat", "stop", 10, 2, "claude-x")


@pytest.fixture
async def store(tmp_path):
    blobs = open_blob_store(f"sqlite:///{tmp_path / 'blobs.db'}")
    yield blobs
    await blobs.close()


async def checked_out(store, tenant="acme"):
    message = ChatMessage(role="user", content=[{"type": "text", "text": "What is it?"}, IMAGE])
    messages = await check_out(store, tenant, [message], threshold_bytes=100)
    assert messages[0].content[1].type == "blob"
    return task("anthropic", "claude-haiku-4-5", [m.model_dump() for m in messages],
                caller={"tenant": "acme"})


async def test_worker_resolves_blob_parts_before_the_call(store):
    t = await checked_out(store)
    transport = Recorder()
    run = await Executor(build_adapter("anthropic", "k"), transport, blobs=store).run(t)
    (request,) = transport.requests
    assert request.json["messages"][0]["content"][1] == {"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": DATA}}
    result = result_of(t, run)
    assert result.status == "ok" and result.text == "a cat" and result.origin is None


async def test_worker_blob_of_another_tenant_is_missing(store):
    t = await checked_out(store, tenant="someone-else")
    transport = Recorder()
    result = result_of(t, await Executor(build_adapter("anthropic", "k"), transport,
                                         blobs=store).run(t))
    assert transport.requests == []
    assert result.error.code == ErrorCode.INVALID_REQUEST
    assert result.error.message.startswith("blob_missing:")


async def test_worker_tampered_blob_is_refused(store):
    t = await checked_out(store)
    ref = t.messages[0].content[1].blob
    swapped = b'{"type":"image","url":"https://evil.test/x.png"}'
    async with store.engine.begin() as conn:
        await conn.execute(blobs.update().values(data=swapped)
                           .where(blobs.c.blob_id == scoped_id("acme", ref.sha256)))
    transport = Recorder()
    result = result_of(t, await Executor(build_adapter("anthropic", "k"), transport,
                                         blobs=store).run(t))
    assert transport.requests == [] and result.error.code == ErrorCode.INVALID_REQUEST
    assert result.error.message.startswith("blob_tampered:")
