"""Claim check: large content parts travel as references to a blob store, not on the bus.

The router calls :func:`check_out` before it publishes tasks: every text or image part whose
JSON is larger than the threshold (default 512 KiB, ``MODELBUS_CLAIM_CHECK_THRESHOLD_BYTES``)
is stored once under (tenant, sha256) and replaced by a :class:`~modelbus_schemas.BlobPart`
carrying its hash, size and kind. When a ``budget_bytes`` is given, further parts (largest
first) are checked out until the parts together fit it, so many medium images still fit one
Kafka message. Workers call :func:`resolve_messages` before the provider call: each reference
is read back within the request's tenant and its hash verified; a missing blob raises
:class:`BlobMissing`, one whose bytes do not match its hash :class:`BlobTampered` (both
terminal). A store that cannot be reached raises
:class:`~modelbus_runtime.errors.TransientInfraError` (the consumer retries in place).

Retention: ``await store.delete_older_than(cutoff)``. The stores live in
:mod:`modelbus_runtime.claimcheck_store`; :func:`build_blob_store` picks one from settings.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from modelbus_schemas import ChatMessage
from modelbus_schemas.content import BlobPart, BlobRef, ImagePart, TextPart
from pydantic import TypeAdapter, ValidationError

from modelbus_runtime.claimcheck_store import BlobStore, open_blob_store
from modelbus_runtime.errors import ModelbusError, TransientInfraError

if TYPE_CHECKING:
    from modelbus_runtime.settings import RuntimeSettings

__all__ = ["DEFAULT_THRESHOLD_BYTES", "BlobMissing", "BlobStore", "BlobTampered",
           "ClaimCheckError", "build_blob_store", "check_out", "has_blobs", "part_bytes",
           "resolve_messages"]

DEFAULT_THRESHOLD_BYTES = 512 * 1024
_SQL_SCHEMES = ("postgres", "sqlite")
_stored_part = TypeAdapter(TextPart | ImagePart)
T = TypeVar("T")


class ClaimCheckError(ModelbusError):
    """A reference that cannot be turned back into its part: terminal for the request."""


class BlobMissing(ClaimCheckError):
    """No blob under this tenant and hash (never stored, another tenant's, or expired)."""


class BlobTampered(ClaimCheckError):
    """The stored bytes do not hash to the reference's sha256, or are not the part it names."""


def build_blob_store(settings: RuntimeSettings) -> BlobStore:
    """``MODELBUS_BLOB_URL``, else ``DATABASE_URL`` when it names PostgreSQL or SQLite, else
    the local SQLite file (``MODELBUS_BLOB_SQLITE_PATH``). No connection is made here."""
    url = settings.blob_url
    if not url and (settings.blob_database_url or "").lower().startswith(_SQL_SCHEMES):
        url = settings.blob_database_url
    if not url:
        url = f"sqlite:///{Path(settings.blob_sqlite_path).expanduser().resolve()}"
    return open_blob_store(url, s3_endpoint_url=settings.blob_s3_endpoint_url,
                           s3_region=settings.blob_s3_region)


def part_bytes(part: TextPart | ImagePart) -> bytes:
    """The part's JSON exactly as stored and hashed."""
    return part.model_dump_json(exclude_none=True).encode()


def has_blobs(messages: list[ChatMessage]) -> bool:
    return any(isinstance(p, BlobPart) for m in messages if isinstance(m.content, list)
               for p in m.content)


async def _store_call(call: Awaitable[T]) -> T:
    try:
        return await call
    except ModelbusError:
        raise
    except Exception as exc:
        raise TransientInfraError(f"blob store unavailable: {type(exc).__name__}") from exc


async def check_out(store: BlobStore, tenant: str, messages: list[ChatMessage],
                    threshold_bytes: int = DEFAULT_THRESHOLD_BYTES, *,
                    budget_bytes: int | None = None) -> list[ChatMessage]:
    """``messages`` with every part above ``threshold_bytes`` (then, while the parts exceed
    ``budget_bytes``, the largest others) stored and replaced by a reference."""
    sized: list[tuple[int, int, TextPart | ImagePart, bytes]] = []
    total = 0
    for m_index, message in enumerate(messages):
        for p_index, part in enumerate(message.parts()):
            if isinstance(part, BlobPart):
                total += len(part.model_dump_json())
                continue
            data = part_bytes(part)
            total += len(data)
            sized.append((m_index, p_index, part, data))
    chosen = [s for s in sized if len(s[3]) > threshold_bytes]
    total -= sum(len(s[3]) for s in chosen)
    if budget_bytes is not None:
        for item in sorted((s for s in sized if len(s[3]) <= threshold_bytes),
                           key=lambda s: len(s[3]), reverse=True):
            if total <= budget_bytes:
                break
            chosen.append(item)
            total -= len(item[3])
    if not chosen:
        return messages
    refs: dict[tuple[int, int], BlobPart] = {}
    unique: dict[str, bytes] = {}
    for m_index, p_index, part, data in chosen:
        sha = hashlib.sha256(data).hexdigest()
        unique[sha] = data
        refs[(m_index, p_index)] = BlobPart(blob=BlobRef(
            ref=f"{store.kind}:{sha}", sha256=sha, size_bytes=len(data), kind=part.type,
            media_type=getattr(part, "media_type", None)))
    await _store_call(asyncio.gather(*(store.put(tenant, sha, data)
                                       for sha, data in unique.items())))
    out = list(messages)
    for m_index in {m for m, _ in refs}:
        parts = [refs.get((m_index, p_index), part)
                 for p_index, part in enumerate(messages[m_index].parts())]
        out[m_index] = messages[m_index].model_copy(update={"content": parts})
    return out


async def _resolve(store: BlobStore, tenant: str, ref: BlobRef) -> TextPart | ImagePart:
    data = await _store_call(store.get(tenant, ref.sha256))
    if data is None:
        raise BlobMissing(f"claim-check blob {ref.sha256[:12]}… not found for this tenant "
                          "(never stored here, or removed by retention)")
    if hashlib.sha256(data).hexdigest() != ref.sha256:
        raise BlobTampered(f"claim-check blob {ref.sha256[:12]}… does not match its hash")
    try:
        part = _stored_part.validate_json(data)
    except ValidationError as exc:
        raise BlobTampered(f"claim-check blob {ref.sha256[:12]}… is not a content part") from exc
    if part.type != ref.kind:
        raise BlobTampered(f"claim-check blob {ref.sha256[:12]}… is a {part.type} part, "
                           f"the reference says {ref.kind}")
    return part


async def resolve_messages(store: BlobStore, tenant: str,
                           messages: list[ChatMessage]) -> list[ChatMessage]:
    """``messages`` with every reference replaced by its verified part (the tenant is the
    request's, never one named by the reference)."""
    if not has_blobs(messages):
        return messages
    wanted = {p.blob.sha256: p.blob for m in messages if isinstance(m.content, list)
              for p in m.content if isinstance(p, BlobPart)}
    found = dict(zip(wanted, await asyncio.gather(
        *(_resolve(store, tenant, ref) for ref in wanted.values())), strict=True))
    out = []
    for message in messages:
        if isinstance(message.content, list) and any(isinstance(p, BlobPart)
                                                      for p in message.content):
            parts = [found[p.blob.sha256] if isinstance(p, BlobPart) else p
                     for p in message.content]
            message = message.model_copy(update={"content": parts})
        out.append(message)
    return out
