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
from modelbus_audit.verify import ChainResult, Progress, verify_chain


def can_split(url: str) -> bool:
    parsed = make_url(db.async_url(url))
    return parsed.get_backend_name() != "sqlite" or parsed.database not in (None, "", ":memory:")


async def walk_in_processes(url: str, chains: list[str], heads: dict, workers: int,
                            progress: Progress | None = None) -> list[ChainResult]:
    """Every chain walked from its first row, by ``workers`` processes."""
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")  # no forked copy of the parent's loop
    results: list[ChainResult] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending = [loop.run_in_executor(pool, _walk, url, chain, heads.get(chain))
                   for chain in chains]
        for finished in asyncio.as_completed(pending):
            results.append(await finished)
            if progress:
                progress(sum(r.checked for r in results), len(results), len(chains))
    return sorted(results, key=lambda r: r.chain)


def _walk(url: str, chain: str, head: tuple[int, str] | None) -> ChainResult:
    return asyncio.run(_walk_async(url, chain, head))


async def _walk_async(url: str, chain: str, head: tuple[int, str] | None) -> ChainResult:
    engine = db.create_engine(url)
    try:
        async with engine.connect() as connection:
            return await verify_chain(connection, chain, head)
    finally:
        await engine.dispose()
