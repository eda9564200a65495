"""Signed checkpoints of chain heads: where incremental verification starts.

The writer knows the head (sequence number and row hash) of every chain it extended, from its
own computation, not from reading the database back. :meth:`Checkpointer.save` signs those
heads (HMAC-SHA256 under the role key ``audit-checkpoint`` of the service's signing ring,
:mod:`modelbus_runtime.signing`) and stores them in ``audit_checkpoints``; the audit service
does so every ``MODELBUS_AUDIT_CHECKPOINT_INTERVAL_S``, and ``verify --full`` after a chain
verified end to end.

``verify`` (incremental) starts each chain at its newest checkpoint whose signature holds:
the checkpointed row must still carry the signed hash, and every later row must continue
from it. Rows before a checkpoint are covered by ``verify --full`` only: incremental
verification is what proves that nothing was appended, cut or rewritten *since* the last
signed head, in seconds however old the store. Someone with write access to the database
but not the signing key cannot make a checkpoint that verifies.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from modelbus_runtime.signing import KeyRing
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from modelbus_audit.tables import audit_checkpoints as cp

ROLE = "audit-checkpoint"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    chain: str
    last_seq: int
    last_row_hash: str
    made_at: datetime
    key_id: str
    signature: str

    def message(self) -> bytes:
        made = self.made_at.replace(tzinfo=self.made_at.tzinfo or UTC).astimezone(UTC)
        parts = ("v1", self.chain, str(self.last_seq), self.last_row_hash,
                 made.isoformat(timespec="microseconds"), self.key_id)
        return b"".join(len(p.encode()).to_bytes(4, "big") + p.encode() for p in parts)


def sign(ring: KeyRing, chain: str, seq: int, row_hash: str,
         made_at: datetime | None = None) -> Checkpoint:
    unsigned = Checkpoint(chain, seq, row_hash, made_at or datetime.now(UTC), ring.active_kid, "")
    key = ring.role_key(ring.active_kid, ROLE)
    return replace(unsigned, signature=hmac.new(key, unsigned.message(), hashlib.sha256)
                   .hexdigest())


def holds(ring: KeyRing, checkpoint: Checkpoint) -> bool:
    key = ring.role_key(checkpoint.key_id, ROLE)
    if key is None:
        return False
    expected = hmac.new(key, checkpoint.message(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, checkpoint.signature)


async def save(connection: AsyncConnection, checkpoints: list[Checkpoint]) -> None:
    if checkpoints:
        await connection.execute(insert(cp), [c.__dict__ for c in checkpoints])


async def newest(connection: AsyncConnection, ring: KeyRing) -> tuple[dict, list[str]]:
    """The newest checkpoint of each chain whose signature holds, and the chains whose newest
    checkpoint does not verify (a forged or altered checkpoint)."""
    latest = select(cp.c.chain, func.max(cp.c.last_seq).label("seq")).group_by(cp.c.chain)
    latest = latest.subquery()
    query = select(cp).join(latest, (cp.c.chain == latest.c.chain)
                            & (cp.c.last_seq == latest.c.seq))
    good: dict[str, Checkpoint] = {}
    bad: set[str] = set()
    for row in (await connection.execute(query)).mappings():
        checkpoint = Checkpoint(**{k: row[k] for k in Checkpoint.__dataclass_fields__})
        if holds(ring, checkpoint):
            good[checkpoint.chain] = checkpoint
        else:
            bad.add(checkpoint.chain)
    return good, sorted(bad - set(good))


async def run_checkpoints(store, interval_s: float, stop: asyncio.Event) -> None:
    """Checkpoint the heads ``store`` wrote every ``interval_s`` until ``stop`` is set, and
    once more at the end. A store outage skips a round (logged): the heads wait for the next."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass
        try:
            if made := await store.checkpoint():
                log.info("signed checkpoints of %d audit chains", made)
        except Exception as exc:  # noqa: BLE001 - a failed round must not stop the service
            log.warning("audit checkpoint failed, retrying next round: %s", exc)
        if stop.is_set():
            return
