"""A requests/min limit shared by two worker processes through Redis holds within 5%:
both replicas call the provider, and together they stay at the configured rate."""

from __future__ import annotations

from datetime import datetime

import pytest
from modelbus_schemas.topics import RESULTS

from tests.upstream import TailReader
from tests.worker.worker_helpers import (
    TaskPublisher,
    bodies,
    make_task,
    scrape,
    start_workers,
    unique,
)

RPM = 1200  # 20 requests/s across both replicas
TASKS = 160


@pytest.fixture(scope="module")
def workers(tmp_path_factory, worker_stack):
    env = {"MODELBUS_PROVIDER": "selfhosted", "MODELBUS_REQUESTS_PER_MIN": str(RPM),
           "MODELBUS_RATE_BURST_S": "0.1", "MODELBUS_STREAM": "false"}
    stack = start_workers(tmp_path_factory.mktemp("rl-workers"), worker_stack,
                          {"worker-rl-a": env, "worker-rl-b": env})
    yield stack
    stack.stop()


async def test_worker_rate_limit_shared_by_two_replicas_holds_within_5_percent(workers, sim):
    model = unique("llama-limited")
    sim.behave(model, latency_ms=5)
    tasks = [make_task("selfhosted", model) for _ in range(TASKS)]
    ids = {t.request_id for t in tasks}
    results = TailReader(workers.bootstrap, RESULTS)
    await results.start()
    async with TaskPublisher(workers.bootstrap) as publisher:
        for task in tasks:
            await publisher.send(task)
    got = bodies(await results.collect(lambda r: r.key.decode() in ids, TASKS, timeout=90))
    await results.stop()

    assert len(got) == TASKS and all(r["status"] == "ok" for r in got)
    starts = sorted(datetime.fromisoformat(r["attempts"][-1]["started_at"]) for r in got)
    span = (starts[-1] - starts[0]).total_seconds()
    # GCRA admits a burst of RPM/60 * burst_s (+1) calls at once, then the steady rate.
    burst = int(RPM / 60 * 0.1) + 1
    observed = (TASKS - burst) / span
    assert observed <= RPM / 60 * 1.05, f"{observed:.2f}/s over a limit of {RPM / 60}/s"
    assert observed >= RPM / 60 * 0.5, f"{observed:.2f}/s: the limiter throttles far too hard"
    per_replica = [_calls_of(scrape(url), model) for url in workers.health.values()]
    assert all(n > 0 for n in per_replica), f"both replicas call the provider: {per_replica}"
    assert sim.calls(model) == TASKS
    assert sum(per_replica) == TASKS, per_replica


def _calls_of(text: str, model: str) -> float:
    """This test's calls only: the workers live for the module (a rerun reuses them)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("modelbus_provider_calls_total{") and
               f'model="{model}"' in line and 'outcome="ok"' in line)
