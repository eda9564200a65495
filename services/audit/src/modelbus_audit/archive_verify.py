"""``verify --archive``: proving the archived files are the ones written.

For every ``audit_archives`` record, in ``seq`` order: the record continues the archive
chain (its ``seq``, its ``prev_hash`` = the previous record's hash, its ``record_hash``
recomputed from its content, :func:`record_hash`); its manifest object still hashes to the
recorded ``manifest_sha256``; and every file the manifest lists still hashes to the SHA-256
in it. With a signing ring, the newest signed checkpoint of chain ``@archive`` must hold and
name a record that is still there with that hash (records cut from the end, or a chain
rewritten without the key, show). Missing objects and altered bytes are reported by key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from modelbus_audit import checkpoints
from modelbus_audit.archive_target import ArchiveTarget
from modelbus_audit.chain import GENESIS, canonical_json, row_hash
from modelbus_audit.tables import audit_archives as ar

ARCHIVE_CHAIN = "@archive"
#: What a record's hash covers (``dropped_at`` is when, not what).
HASHED = ("seq", "day", "manifest_key", "manifest_sha256", "files", "rows", "bytes", "ranges",
          "made_at")


def record_hash(record: Mapping[str, Any], prev_hash: str) -> str:
    content = {**record, "day": str(record["day"])}
    return row_hash(prev_hash, hashlib.sha256(canonical_json(content, HASHED)).hexdigest())


@dataclass
class ArchiveReport:
    records: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        head = (f"archive {'OK' if self.ok else 'TAMPERED'}: {self.files} files in "
                f"{self.records} archived days checked")
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


async def check_manifest(target: ArchiveTarget, key: str, sha256: str) -> list[str]:
    """What no longer holds of the manifest at ``key`` and the files it lists."""
    body = await target.get(key)
    if body is None:
        return [f"manifest {key} is missing"]
    if hashlib.sha256(body).hexdigest() != sha256:
        return [f"manifest {key} was altered (its SHA-256 is not the recorded one)"]
    problems = []
    for entry in json.loads(body)["files"]:
        found = await target.sha256(entry["key"])
        if found is None:
            problems.append(f"file {entry['key']} is missing")
        elif found != entry["sha256"]:
            problems.append(f"file {entry['key']} was altered (SHA-256 {found[:12]}…, "
                            f"manifest says {entry['sha256'][:12]}…)")
    return problems


async def verify_archive(engine: AsyncEngine, target: ArchiveTarget,
                         ring=None) -> ArchiveReport:
    report = ArchiveReport()
    async with engine.connect() as connection:
        records = (await connection.execute(select(ar).order_by(ar.c.seq))).mappings().all()
        signed, forged = ({}, [])
        if ring is not None:
            signed, forged = await checkpoints.newest(connection, ring)
    prev, hashes = GENESIS, {}
    for record in records:
        report.records += 1
        where = f"archive record seq {record['seq']} ({record['day']})"
        if record["seq"] != report.records:
            report.problems.append(f"{where}: expected seq {report.records} (records removed)")
        elif record["prev_hash"] != prev or record_hash(record, prev) != record["record_hash"]:
            report.problems.append(f"{where}: does not continue the archive chain "
                                   "(the record was altered)")
        prev = record["record_hash"]
        hashes[record["seq"]] = prev
        report.files += record["files"]
        report.problems += [f"{where}: {p}" for p in await check_manifest(
            target, record["manifest_key"], record["manifest_sha256"])]
    if ARCHIVE_CHAIN in forged:
        report.problems.append("the newest archive checkpoint's signature does not hold")
    checkpoint = signed.get(ARCHIVE_CHAIN)
    if checkpoint is not None and hashes.get(checkpoint.last_seq) != checkpoint.last_row_hash:
        report.problems.append(
            f"the signed archive checkpoint names record seq {checkpoint.last_seq}, which is "
            "gone or altered (archive records removed or rewritten)")
    return report
