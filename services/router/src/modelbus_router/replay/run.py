"""Replay: recorded requests in, a :class:`~modelbus_router.replay.report.Report` out.

Each request is routed under the candidate policy with :func:`~modelbus_router.replay.decide.decide`
(no provider is called, no router state touched), compared with what was recorded, and
folded into the report; with ``details`` each comparison is also written as one JSON line;
budgets and quotas are simulated under the candidate in memory unless ``limits`` is off
(:mod:`~modelbus_router.replay.limits`); ``observe`` sees each request with the candidate's decision (counterfactual execution
samples from it: :class:`~modelbus_router.replay.counterfactual.Sampler`).
Batches stream through: memory holds one batch and the report's bounded counters.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Callable
from typing import IO

from modelbus_router.policy import Policy
from modelbus_router.replay.compare import compare
from modelbus_router.replay.decide import DryDecision, decide
from modelbus_router.replay.limits import Limits
from modelbus_router.replay.recorded import Recorded
from modelbus_router.replay.report import Report

Progress = Callable[[int], None]
Observer = Callable[[Recorded, DryDecision], None]


async def replay(batches: AsyncIterable[list[Recorded]], policy: Policy, *,
                 progress: Progress | None = None, details: IO[str] | None = None,
                 observe: Observer | None = None, limits: bool = True) -> Report:
    report = Report(candidate_version=policy.version)
    simulated = Limits() if limits else None
    async for batch in batches:
        for recorded in batch:
            decision = decide(policy, recorded.request)
            if simulated is not None:
                decision = simulated.admit(policy, recorded, decision)
            comparison = compare(policy, recorded, decision)
            report.add(comparison)
            if observe is not None:
                observe(recorded, decision)
            if details is not None:
                details.write(json.dumps(comparison.as_dict(), default=str) + "\n")
        if progress is not None:
            progress(report.replayed)
    if simulated is not None:
        report.limits_refused = dict(simulated.refused)
    return report
