"""Claim check against real stores: PostgreSQL, a SQLite file, and an S3 server (moto's).

Large parts are stored once and replaced by references; references resolve only within
their tenant, verify their hash, and are gone after retention.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from modelbus_runtime.claimcheck import (
    BlobMissing,
    BlobTampered,
    build_blob_store,
    check_out,
    has_blobs,
    part_bytes,
    resolve_messages,
)
from modelbus_runtime.claimcheck_store import (
    S3BlobStore,
    SqlBlobStore,
    blobs,
    open_blob_store,
)
from modelbus_runtime.errors import TransientInfraError
from modelbus_runtime.settings import RuntimeSettings
from modelbus_schemas import ChatMessage
from modelbus_schemas.content import BlobPart, ImagePart, TextPart
from modelbus_schemas.identity import scoped_id
from modelbus_testing.pg import temporary_postgres_database
from modelbus_testing.s3 import moto_s3

KIB = 1024


@pytest.fixture(scope="module")
def pg_url():
    with temporary_postgres_database("modelbus_blobs") as url:
        yield url


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture(params=["postgresql", "sqlite", "s3"])
async def store(request, tmp_path, monkeypatch):
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        blob_store = open_blob_store(url)
    elif request.param == "sqlite":
        blob_store = open_blob_store(f"sqlite:///{tmp_path / 'blobs.db'}")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(name, "test")
        blob_store = open_blob_store("s3://modelbus-blobs/claims", s3_endpoint_url=endpoint)
        blob_store.client.create_bucket(Bucket="modelbus-blobs")
    yield blob_store
    await blob_store.close()


def _image(size_bytes: int, seed: int = 0) -> ImagePart:
    raw = bytes((seed + i) % 251 for i in range(size_bytes))
    return ImagePart(data=base64.b64encode(raw).decode(), media_type="image/png")


def _conversation() -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content=[TextPart(text="what is in these?"),
                                          _image(600 * KIB, 1), _image(10 * KIB, 2)]),
        ChatMessage(role="assistant", content="x" * (700 * KIB)),
    ]


async def test_large_parts_are_checked_out_and_resolve_to_the_same_messages(store):
    messages = _conversation()
    out = await check_out(store, "acme", messages, 512 * KIB)
    assert has_blobs(out) and not has_blobs(messages)
    blobs = [p for m in out for p in m.parts() if isinstance(p, BlobPart)]
    assert [b.blob.kind for b in blobs] == ["image", "text"]
    image = messages[1].content[1]
    assert blobs[0].blob.sha256 == hashlib.sha256(part_bytes(image)).hexdigest()
    assert blobs[0].blob.size_bytes == len(part_bytes(image))
    assert blobs[0].blob.media_type == "image/png"
    assert out[0] == messages[0]  # small content stays inline
    assert out[1].image_count() == 2 and isinstance(out[1].content[2], ImagePart)
    assert len(out[2].model_dump_json()) < 1024

    back = await resolve_messages(store, "acme", out)
    assert [m.text for m in back] == [m.text for m in messages]
    assert back[1] == messages[1]
    assert back[2].parts() == messages[2].parts()


async def test_a_reference_resolves_only_within_its_tenant(store):
    out = await check_out(store, "acme", _conversation(), 512 * KIB)
    with pytest.raises(BlobMissing):
        await resolve_messages(store, "globex", out)
    # a tenant whose name would collide with a naive "tenant:hash" key
    with pytest.raises(BlobMissing):
        await resolve_messages(store, "acm", out)


async def test_put_is_idempotent_and_retention_deletes_blobs(store):
    messages = _conversation()
    first = await check_out(store, "acme", messages, 512 * KIB)
    second = await check_out(store, "acme", messages, 512 * KIB)
    assert first == second
    assert await store.delete_older_than(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert (await resolve_messages(store, "acme", first))[1] == messages[1]
    removed = await store.delete_older_than(datetime.now(UTC) + timedelta(seconds=5))
    assert removed >= 2
    with pytest.raises(BlobMissing):
        await resolve_messages(store, "acme", first)


async def test_a_tampered_blob_is_refused(store):
    out = await check_out(store, "acme", _conversation(), 512 * KIB)
    ref = out[2].content[0].blob
    other = TextPart(text="not what was sent").model_dump_json().encode()
    if isinstance(store, S3BlobStore):
        store.client.put_object(Bucket=store.bucket, Key=store.key("acme", ref.sha256),
                                Body=other)
    else:
        async with store.engine.begin() as conn:
            await conn.execute(blobs.update().values(data=other)
                               .where(blobs.c.blob_id == scoped_id("acme", ref.sha256)))
    with pytest.raises(BlobTampered):
        await resolve_messages(store, "acme", out)


async def test_a_budget_checks_out_medium_parts_largest_first(tmp_path):
    store = open_blob_store(f"sqlite:///{tmp_path / 'b.db'}")
    images = [_image(200 * KIB, i) for i in range(6)]
    messages = [ChatMessage(role="user", content=[TextPart(text="compare"), *images])]
    untouched = await check_out(store, "acme", messages, 512 * KIB)
    assert untouched is messages
    out = await check_out(store, "acme", messages, 512 * KIB, budget_bytes=700 * KIB)
    assert len(out[0].model_dump_json()) <= 700 * KIB
    kept_inline = [p for p in out[0].content if isinstance(p, ImagePart)]
    assert 0 < len(kept_inline) < 6
    assert (await resolve_messages(store, "acme", out)) == messages
    await store.close()


async def test_an_unreachable_store_is_a_transient_error():
    store = open_blob_store("postgresql://postgres@127.0.0.1:1/nowhere")
    with pytest.raises(TransientInfraError):
        await check_out(store, "acme", _conversation(), 512 * KIB)
    await store.close()


def test_settings_choose_the_store(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("MODELBUS_BLOB_URL", raising=False)
    monkeypatch.setenv("MODELBUS_BLOB_SQLITE_PATH", str(tmp_path / "local" / "blobs.db"))
    local = build_blob_store(RuntimeSettings())
    assert isinstance(local, SqlBlobStore) and local.kind == "sqlite"
    assert (tmp_path / "local").is_dir()
    monkeypatch.setenv("DATABASE_URL", "unused")  # not a database: the local file
    assert build_blob_store(RuntimeSettings()).kind == "sqlite"
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/x")
    assert build_blob_store(RuntimeSettings()).kind == "pg"
    monkeypatch.setenv("MODELBUS_BLOB_URL", "s3://bucket/p")
    monkeypatch.setenv("MODELBUS_BLOB_S3_ENDPOINT_URL", "http://127.0.0.1:1")
    s3 = build_blob_store(RuntimeSettings())
    assert isinstance(s3, S3BlobStore) and s3.bucket == "bucket" and s3.prefix == "p"
    with pytest.raises(ValueError):
        open_blob_store("mysql://x")


async def test_processes_starting_together_create_the_table_once():
    with temporary_postgres_database("modelbus_blobs_race") as url:
        stores = [open_blob_store(url) for _ in range(4)]
        data = TextPart(text="shared").model_dump_json().encode()
        sha = hashlib.sha256(data).hexdigest()
        await asyncio.gather(*(s.put("acme", sha, data) for s in stores))
        assert {await s.get("acme", sha) for s in stores} == {data}
        for s in stores:
            await s.close()
