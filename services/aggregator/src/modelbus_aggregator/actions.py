"""What a plan's flow decides after an event: respond, dispatch one more task, or wait.

The flows (:mod:`ensemble`, :mod:`cascade`, :mod:`chain`) are pure functions returning one
of these; :class:`~modelbus_aggregator.engine.Aggregator` carries them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from modelbus_schemas import ResponseEvent, ResultEvent, TaskEvent

Position = tuple[int, int]  # (part_id, step)


@dataclass(frozen=True)
class Respond:
    response: ResponseEvent


@dataclass(frozen=True)
class Dispatch:
    task: TaskEvent


Action = Respond | Dispatch | None


@dataclass(frozen=True)
class FlowInput:
    """A request's state as a flow sees it."""

    results: dict[Position, ResultEvent]
    now: datetime
    final: bool = False  # the deadline passed: respond with what there is
    incoming: ResultEvent | None = None  # the result being handled (None on a deadline)
    origin: TaskEvent | None = None  # the first step's task, kept for chains
