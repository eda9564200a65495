"""``verify --full`` in several processes: chains are independent, so each worker process
opens its own connection and walks whole chains while the parent collects the results (and
reports progress) as chains finish. Checking a row is CPU-bound Python (canonical JSON and
SHA-256), so processes, not threads, are what make it faster. Only for a store another process
can open (PostgreSQL, a SQLite file); an in-memory SQLite store is walked in-process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from sqlalchemy.engine import make_url

from modelbus_audit import db
from modelbus_audit.verify import ChainResult, Progress, archived_runs, verify_chain

#: Below this many rows, one process verifies faster than starting more.
PARALLEL_MIN_ROWS = 100_000


def can_split(url: str) -> bool:
    parsed = make_url(db.async_url(url))
    return parsed.get_backend_name() != "sqlite" or parsed.database not in (None, "", ":memory:")


def worth_it(heads: dict, workers: int) -> bool:
    """Whether the store is big enough for worker processes to pay for their start-up."""
    return workers > 1 and sum(seq for seq, _ in heads.values()) >= PARALLEL_MIN_ROWS


def groups(chains: list[str], heads: dict, count: int) -> list[list[str]]:
    """``chains`` in ``count`` groups of about equal rows (largest chains placed first)."""
    bins: list[tuple[int, list[str]]] = [(0, []) for _ in range(count)]
    for chain in sorted(chains, key=lambda c: -heads.get(c, (0, ""))[0]):
        rows, members = min(bins, key=lambda b: b[0])
        bins.remove((rows, members))
        bins.append((rows + heads.get(chain, (0, ""))[0], [*members, chain]))
    return [members for _, members in bins if members]


async def walk_in_processes(url: str, chains: list[str], heads: dict, workers: int,
                            progress: Progress | None = None) -> list[ChainResult]:
    """Every chain walked from its first row, by ``workers`` processes (each walking groups
    of chains over one connection)."""
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")  # no forked copy of the parent's loop
    results: list[ChainResult] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending = [loop.run_in_executor(pool, _walk, url, group, heads)
                   for group in groups(chains, heads, workers * 2)]
        for finished in asyncio.as_completed(pending):
            results.extend(await finished)
            if progress:
                progress(sum(r.checked for r in results), len(results), len(chains))
    return sorted(results, key=lambda r: r.chain)


def _walk(url: str, chains: list[str], heads: dict) -> list[ChainResult]:
    return asyncio.run(_walk_async(url, chains, heads))


async def _walk_async(url: str, chains: list[str], heads: dict) -> list[ChainResult]:
    engine = db.create_engine(url)
    try:
        async with engine.connect() as connection:
            runs = await archived_runs(connection)
            return [await verify_chain(connection, chain, heads.get(chain), None,
                                       runs.get(chain)) for chain in chains]
    finally:
        await engine.dispose()
