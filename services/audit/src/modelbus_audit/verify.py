"""Walking the hash chains of the audit store and reporting where they stop holding.

Rows are read chain by chain in pages (keyset on ``chain_seq``), so memory stays flat however
large the store. A chain is walked from its first row, or from a signed checkpoint
(:mod:`modelbus_audit.checkpoints`): then the checkpointed row must still carry the signed
hash and the walk continues from it. The first bad row of each chain is reported; the
report's ``first_*`` fields name the earliest of them by row id. Walking chains in several
processes at once is :mod:`modelbus_audit.verify_parallel`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from modelbus_audit.chain import GENESIS, row_problem
from modelbus_audit.tables import audit_chain_heads, audit_events

if TYPE_CHECKING:
    from modelbus_audit.checkpoints import Checkpoint

PAGE_ROWS = 2000
#: Progress of a verification: rows checked, chains done, chains in all.
Progress = Callable[[int, int, int], None]


@dataclass(frozen=True)
class ChainProblem:
    chain: str
    reason: str
    row_id: int | None = None
    event_id: str | None = None
    chain_seq: int | None = None


@dataclass(frozen=True)
class ChainResult:
    """One chain checked: rows checked, its first problem, the verified head when it holds."""

    chain: str
    checked: int
    problem: ChainProblem | None
    last_seq: int = 0
    last_row_hash: str = GENESIS


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    rows_checked: int
    chains_checked: int
    problems: list[ChainProblem] = field(default_factory=list)
    #: Chains checked from a signed checkpoint rather than from their first row.
    from_checkpoints: int = 0

    @property
    def first(self) -> ChainProblem | None:
        return self.problems[0] if self.problems else None

    @property
    def first_bad_id(self) -> int | None:
        return self.first.row_id if self.first else None

    @property
    def first_bad_event_id(self) -> str | None:
        return self.first.event_id if self.first else None

    @property
    def reason(self) -> str | None:
        return self.first.reason if self.first else None

    def describe(self) -> str:
        head = (
            f"audit store {'OK' if self.ok else 'TAMPERED'}: "
            f"{self.rows_checked} rows in {self.chains_checked} chains checked"
        ) + (f" ({self.from_checkpoints} chains from their last signed checkpoint; "
             "verify --full checks every row)" if self.from_checkpoints else "")
        lines = [head]
        for problem in self.problems:
            where = (
                f"row id={problem.row_id} event_id={problem.event_id} seq={problem.chain_seq}"
                if problem.row_id is not None
                else "chain head"
            )
            lines.append(f"  chain {problem.chain}: {where}: {problem.reason}")
        return "\n".join(lines)


async def chains_and_heads(connection: AsyncConnection) -> tuple[list[str], dict]:
    """Every chain (with rows or a head) and every head's (last seq, last row hash)."""
    heads = {
        row.chain: (row.last_seq, row.last_row_hash)
        for row in await connection.execute(select(audit_chain_heads))
    }
    chains = set(heads) | set(
        (await connection.execute(select(audit_events.c.chain).distinct())).scalars()
    )
    return sorted(chains), heads


async def walk(
    connection: AsyncConnection, chains: list[str], heads: dict,
    starts: dict[str, Checkpoint] | None = None, progress: Progress | None = None,
) -> list[ChainResult]:
    """Walk ``chains`` one after the other, each from its checkpoint in ``starts`` (else
    from its first row)."""
    results: list[ChainResult] = []
    for chain in chains:
        results.append(await verify_chain(connection, chain, heads.get(chain),
                                          (starts or {}).get(chain)))
        if progress:
            progress(sum(r.checked for r in results), len(results), len(chains))
    return results


def report_of(results: list[ChainResult], extra: list[ChainProblem] = (),
              from_checkpoints: int = 0) -> VerifyReport:
    problems = [r.problem for r in results if r.problem] + list(extra)
    problems.sort(key=lambda p: (p.row_id is None, p.row_id or 0, p.chain))
    return VerifyReport(not problems, sum(r.checked for r in results), len(results), problems,
                        from_checkpoints)


async def verify_chain(
    connection: AsyncConnection, chain: str, head: tuple[int, str] | None,
    start: Checkpoint | None = None,
) -> ChainResult:
    """Check ``chain`` from ``start`` (a verified checkpoint) or from its first row."""
    last_seq, prev_hash = (start.last_seq, start.last_row_hash) if start else (0, GENESIS)
    if start is not None:
        anchored = (await connection.execute(
            select(audit_events.c.row_hash).where(audit_events.c.chain == chain,
                                                   audit_events.c.chain_seq == last_seq)
        )).scalar_one_or_none()
        if anchored != prev_hash:
            return ChainResult(chain, 0, ChainProblem(
                chain, f"the row at checkpoint seq {last_seq} is gone or no longer carries "
                "the signed row_hash (rows before the checkpoint were rewritten)"))
    checked, expected_seq = 0, last_seq + 1
    while True:
        page = (
            await connection.execute(
                select(audit_events)
                .where(audit_events.c.chain == chain, audit_events.c.chain_seq > last_seq)
                .order_by(audit_events.c.chain_seq)
                .limit(PAGE_ROWS)
            )
        ).mappings().all()
        for row in page:
            checked += 1
            reason = row_problem(row, expected_seq, prev_hash)
            if reason:
                return ChainResult(chain, checked, ChainProblem(
                    chain, reason, row["id"], row["event_id"], row["chain_seq"]))
            prev_hash, last_seq = row["row_hash"], row["chain_seq"]
            expected_seq = last_seq + 1
        if len(page) < PAGE_ROWS:
            break
    if head is None:
        return ChainResult(chain, checked, ChainProblem(chain, "chain has rows but no head record"))
    head_seq, head_hash = head
    if head_seq != last_seq or head_hash != prev_hash:
        return ChainResult(chain, checked, ChainProblem(
            chain,
            f"chain head expects last row seq {head_seq} but the chain ends at seq {last_seq} "
            "(rows removed from the end, or the head was altered)",
        ))
    return ChainResult(chain, checked, None, last_seq, prev_hash)
