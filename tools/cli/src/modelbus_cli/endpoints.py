"""Where the CLI finds the broker, Redis and the audit store.

Flags win, then the environment (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``,
``DATABASE_URL``, also with the ``MODELBUS_`` prefix), then the endpoints a running
``modelbus run`` wrote to ``<workdir>/stack.json``, then the defaults.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_FILE = "stack.json"


@dataclass
class Endpoints:
    bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str | None = None

    def save(self, workdir: Path) -> None:
        (workdir / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))


def _env(name: str) -> str | None:
    return os.environ.get(f"MODELBUS_{name}") or os.environ.get(name)


def resolve(workdir: str | Path = ".modelbus", bootstrap: str | None = None,
            redis_url: str | None = None, database_url: str | None = None) -> Endpoints:
    saved = {}
    path = Path(workdir) / STATE_FILE
    if path.exists():
        saved = json.loads(path.read_text())
    default = Endpoints()
    return Endpoints(
        bootstrap=bootstrap or _env("KAFKA_BOOTSTRAP_SERVERS") or saved.get("bootstrap")
        or default.bootstrap,
        redis_url=redis_url or _env("REDIS_URL") or saved.get("redis_url") or default.redis_url,
        database_url=database_url or _env("DATABASE_URL") or saved.get("database_url"),
    )


def forget(workdir: str | Path) -> None:
    (Path(workdir) / STATE_FILE).unlink(missing_ok=True)
