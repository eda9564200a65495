"""Worker processes on the real broker against the simulator, for what the richer contract
adds: a task whose image travels as a claim-check reference (resolved by the worker from the
shared blob store within the task's tenant; another tenant's reference is a clear
``invalid_request``), tool calls, and an embedding task whose vectors come back in order."""

from __future__ import annotations

import base64

import pytest
from modelbus_runtime.claimcheck import check_out
from modelbus_runtime.claimcheck_store import open_blob_store
from modelbus_schemas import ChatMessage
from modelbus_schemas.topics import RESULTS

from tests.upstream import TailReader
from tests.worker.worker_helpers import TaskPublisher, bodies, make_task, start_workers, unique

IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(4096)).decode()


@pytest.fixture(scope="module")
def blob_url(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('blobs') / 'blobs.db'}"


@pytest.fixture(scope="module")
def workers(tmp_path_factory, worker_stack, blob_url):
    env = {"MODELBUS_BLOB_URL": blob_url}
    stack = start_workers(tmp_path_factory.mktemp("surface-workers"), worker_stack, {
        "worker-anthropic": {"MODELBUS_PROVIDER": "anthropic", **env},
        "worker-gemini": {"MODELBUS_PROVIDER": "gemini", **env},
    })
    yield stack
    stack.stop()


async def _results(bootstrap, tasks):
    reader = TailReader(bootstrap, RESULTS)
    await reader.start()
    ids = {t.request_id for t in tasks}
    async with TaskPublisher(bootstrap) as publisher:
        for task in tasks:
            await publisher.send(task)
    got = await reader.collect(lambda r: r.key.decode() in ids, len(tasks), timeout=60)
    await reader.stop()
    return {r["request_id"]: r for r in bodies(got)}


async def _checked_out(blob_url, tenant):
    store = open_blob_store(blob_url)
    try:
        message = ChatMessage(role="user", content=[
            {"type": "text", "text": "Describe it"},
            {"type": "image", "data": IMAGE, "media_type": "image/png"}])
        [out] = await check_out(store, tenant, [message], threshold_bytes=1024)
    finally:
        await store.close()
    assert out.content[1].type == "blob"
    return [out.model_dump(mode="json")]


async def test_worker_resolves_claim_checks_and_serves_tools_and_embeddings(
        workers, sim, blob_url):
    model, embedder = unique("claude-haiku-4-5"), unique("gemini-embedding-001")
    messages = await _checked_out(blob_url, "acme")
    image = make_task("anthropic", model, tenant="acme", messages=messages)
    stolen = make_task("anthropic", model, tenant="other", messages=messages)
    tools = make_task("anthropic", model, params={"tools": [
        {"name": "lookup", "parameters": {"type": "object", "properties": {
            "q": {"type": "string"}}, "required": ["q"]}}], "tool_choice": "required"})
    embed = make_task("gemini", embedder, operation="embed", messages=[],
                      input=["one", "two", "three"])
    got = await _results(workers.bootstrap, [image, stolen, tools, embed])

    assert got[image.request_id]["status"] == "ok", got[image.request_id]
    assert "saw 1 image" in got[image.request_id]["text"]
    refused = got[stolen.request_id]
    assert refused["status"] == "error" and refused["error"]["code"] == "invalid_request"
    assert refused["error"]["message"].startswith("blob_missing:")
    called = got[tools.request_id]
    assert called["finish_reason"] == "tool_calls"
    assert [c["name"] for c in called["tool_calls"]] == ["lookup"]
    vectors = got[embed.request_id]["embeddings"]
    assert len(vectors) == 3 and len({tuple(v) for v in vectors}) == 3
    assert sim.calls(model) == 2, "the refused reference made no provider call"
