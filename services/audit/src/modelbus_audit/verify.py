"""Walking the hash chains of the audit store and reporting where they stop holding.

Rows are read chain by chain in pages (keyset on ``chain_seq``), so memory stays flat however
large the store. A chain is walked from its first row, or from a signed checkpoint
(:mod:`modelbus_audit.checkpoints`): then the checkpointed row must still carry the signed
hash and the walk continues from it. Rows archived and dropped from the live store
(:mod:`modelbus_audit.archive`) leave gaps in a chain: the walk crosses a gap only where an
archived run (first seq, last seq, the hash before it, its last row hash, recorded in the hash
chain of ``audit_archives``) continues the chain exactly; ``verify --archive`` proves the
archived files themselves. The first bad row of each chain is reported; the
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
from modelbus_audit.tables import audit_archives, audit_chain_heads, audit_events

if TYPE_CHECKING:
    from modelbus_audit.checkpoints import Checkpoint

PAGE_ROWS = 2000
#: An archived run of a chain: (first seq, last seq, prev hash of the first, last row hash).
Run = tuple[int, int, str, str]
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


async def archived_runs(connection: AsyncConnection) -> dict[str, dict[int, Run]]:
    """The runs of every chain that were archived and dropped, keyed by their first seq."""
    runs: dict[str, dict[int, Run]] = {}
    query = select(audit_archives.c.ranges).where(audit_archives.c.dropped_at.is_not(None))
    for ranges in (await connection.execute(query)).scalars():
        for chain, chain_runs in ranges.items():
            runs.setdefault(chain, {}).update({r[0]: tuple(r) for r in chain_runs})
    return runs


def _bridge(runs: dict[int, Run], seq: int, prev_hash: str, before: int | None = None
            ) -> tuple[int, str]:
    """Cross the archived runs that continue the chain at ``seq`` after ``prev_hash`` (up to
    ``before``): the next expected seq and previous hash."""
    while (run := runs.get(seq)) and run[2] == prev_hash and (before is None or run[1] < before):
        seq, prev_hash = run[1] + 1, run[3]
    return seq, prev_hash


async def walk(
    connection: AsyncConnection, chains: list[str], heads: dict,
    starts: dict[str, Checkpoint] | None = None, progress: Progress | None = None,
) -> list[ChainResult]:
    """Walk ``chains`` one after the other, each from its checkpoint in ``starts`` (else
    from its first row)."""
    results: list[ChainResult] = []
    runs = await archived_runs(connection)
    for chain in chains:
        results.append(await verify_chain(connection, chain, heads.get(chain),
                                          (starts or {}).get(chain), runs.get(chain)))
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
    start: Checkpoint | None = None, runs: dict[int, Run] | None = None,
) -> ChainResult:
    """Check ``chain`` from ``start`` (a verified checkpoint) or from its first row, crossing
    the archived ``runs`` of it."""
    runs = runs or {}
    last_seq, prev_hash = (start.last_seq, start.last_row_hash) if start else (0, GENESIS)
    if start is not None:
        anchored = (await connection.execute(
            select(audit_events.c.row_hash).where(audit_events.c.chain == chain,
                                                   audit_events.c.chain_seq == last_seq)
        )).scalar_one_or_none()
        archived = next((r for r in runs.values() if r[0] <= last_seq <= r[1]), None)
        if anchored is None and archived is not None:  # the checkpointed row was archived
            anchored = prev_hash if archived[1] == last_seq else None
            if archived[1] > last_seq:  # inside the run: continue from its end
                anchored, last_seq, prev_hash = archived[3], archived[1], archived[3]
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
            if row["chain_seq"] > expected_seq and runs:
                expected_seq, prev_hash = _bridge(runs, expected_seq, prev_hash,
                                                  row["chain_seq"])
            reason = row_problem(row, expected_seq, prev_hash)
            if reason:
                return ChainResult(chain, checked, ChainProblem(
                    chain, reason, row["id"], row["event_id"], row["chain_seq"]))
            prev_hash, last_seq = row["row_hash"], row["chain_seq"]
            expected_seq = last_seq + 1
        if len(page) < PAGE_ROWS:
            break
    if runs:  # the newest rows of the chain may be archived too
        expected_seq, prev_hash = _bridge(runs, expected_seq, prev_hash)
        last_seq = expected_seq - 1
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
