"""Verification as a background job: the API starts it and answers at once; clients poll its
progress (rows checked, chains done of all) and, when it is done, its report. One job runs at
a time per process (starting another while one runs returns the running one); the last few
finished jobs stay readable. The walk yields to the event loop between pages, so lineage
lookups keep being answered while it runs.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelbus_audit.store import AuditStore

KEEP_FINISHED = 20


@dataclass
class VerifyJob:
    id: str
    full: bool
    state: str = "running"
    rows_checked: int = 0
    chains_done: int = 0
    chains_total: int | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    def progress(self, rows: int, done: int, total: int) -> None:
        self.rows_checked, self.chains_done, self.chains_total = rows, done, total

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("started_at", "finished_at"):
            out[name] = out[name].isoformat() if out[name] else None
        return out


class VerifyJobs:
    def __init__(self, store: AuditStore) -> None:
        self.store = store
        self.jobs: dict[str, VerifyJob] = {}
        self._tasks: set[asyncio.Task] = set()

    def start(self, full: bool = False, workers: int = 1) -> VerifyJob:
        running = next((j for j in self.jobs.values() if j.state == "running"), None)
        if running is not None:
            return running
        job = VerifyJob(uuid.uuid4().hex, full)
        self.jobs[job.id] = job
        task = asyncio.create_task(self._run(job, workers))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        finished = [j for j in self.jobs.values() if j.state != "running"]
        for old in finished[:-KEEP_FINISHED]:
            del self.jobs[old.id]
        return job

    def get(self, job_id: str) -> VerifyJob | None:
        return self.jobs.get(job_id)

    async def _run(self, job: VerifyJob, workers: int) -> None:
        try:
            report = await self.store.verify(full=job.full, workers=workers,
                                             progress=job.progress)
            job.result = report_dict(report)
            job.state = "done"
        except Exception as exc:  # noqa: BLE001 - the job reports it; the API stays up
            job.state, job.error = "failed", str(exc)[:300]
        job.finished_at = datetime.now(UTC)


def report_dict(report) -> dict[str, Any]:
    return {"ok": report.ok, "rows_checked": report.rows_checked,
            "chains_checked": report.chains_checked,
            "from_checkpoints": report.from_checkpoints,
            "problems": [asdict(p) for p in report.problems]}
