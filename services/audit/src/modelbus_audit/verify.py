"""Walking every hash chain of the audit store and reporting where it stops holding.

Rows are read chain by chain in pages (keyset on ``chain_seq``), so memory stays flat however
large the store. The first bad row of each chain is reported; the report's ``first_*`` fields
name the earliest of them by row id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from modelbus_audit.chain import GENESIS, row_problem
from modelbus_audit.tables import audit_chain_heads, audit_events

PAGE_ROWS = 500


@dataclass(frozen=True)
class ChainProblem:
    chain: str
    reason: str
    row_id: int | None = None
    event_id: str | None = None
    chain_seq: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    rows_checked: int
    chains_checked: int
    problems: list[ChainProblem] = field(default_factory=list)

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
        )
        lines = [head]
        for problem in self.problems:
            where = (
                f"row id={problem.row_id} event_id={problem.event_id} seq={problem.chain_seq}"
                if problem.row_id is not None
                else "chain head"
            )
            lines.append(f"  chain {problem.chain}: {where}: {problem.reason}")
        return "\n".join(lines)


async def verify_chains(connection: AsyncConnection) -> VerifyReport:
    heads = {
        row.chain: (row.last_seq, row.last_row_hash)
        for row in await connection.execute(select(audit_chain_heads))
    }
    chains = set(heads) | set(
        (await connection.execute(select(audit_events.c.chain).distinct())).scalars()
    )
    rows_checked, problems = 0, []
    for chain in sorted(chains):
        checked, problem = await _verify_chain(connection, chain, heads.get(chain))
        rows_checked += checked
        if problem:
            problems.append(problem)
    problems.sort(key=lambda p: (p.row_id is None, p.row_id or 0, p.chain))
    return VerifyReport(not problems, rows_checked, len(chains), problems)


async def _verify_chain(
    connection: AsyncConnection, chain: str, head: tuple[int, str] | None
) -> tuple[int, ChainProblem | None]:
    checked, expected_seq, prev_hash, last_seq = 0, 1, GENESIS, 0
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
                return checked, ChainProblem(
                    chain, reason, row["id"], row["event_id"], row["chain_seq"]
                )
            prev_hash, last_seq = row["row_hash"], row["chain_seq"]
            expected_seq = last_seq + 1
        if len(page) < PAGE_ROWS:
            break
    if head is None:
        return checked, ChainProblem(chain, "chain has rows but no head record")
    head_seq, head_hash = head
    if head_seq != last_seq or head_hash != prev_hash:
        return checked, ChainProblem(
            chain,
            f"chain head expects last row seq {head_seq} but the chain ends at seq {last_seq} "
            "(rows removed from the end, or the head was altered)",
        )
    return checked, None
