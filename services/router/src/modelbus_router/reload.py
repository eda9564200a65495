"""The policy in force, reloaded when its file changes.

At start a bad policy raises :class:`~modelbus_router.policy.PolicyError` (the service
refuses to start with the error naming the field). Afterwards :meth:`PolicySource.refresh`
(polled by :meth:`watch`) loads a changed file; an invalid new version is logged and the
last good one stays in force. Each request reads :attr:`current` once, so a decision is made
under exactly one version.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from modelbus_runtime.logging import log_fields

from modelbus_router.policy import (
    DEFAULT_POLICY_PATH,
    Policy,
    PolicyError,
    content_version,
    load_policy,
    parse_policy,
)

log = logging.getLogger(__name__)


class PolicySource:
    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else DEFAULT_POLICY_PATH
        self.current: Policy = load_policy(self.path)
        self.last_error: str | None = None
        self._seen = self.current.version

    def refresh(self) -> bool:
        """Load the file if its content changed; True when a new version came into force."""
        try:
            text = self.path.read_text()
        except OSError:
            return False  # mid-rename or removed: keep what we have
        version = content_version(text)
        if version == self._seen:
            return False
        self._seen = version
        try:
            policy = parse_policy(text, str(self.path))
        except PolicyError as exc:
            self.last_error = str(exc)
            log.error("policy reload refused; keeping the last good version",
                      extra=log_fields(error=str(exc), version=self.current.version))
            return False
        self.last_error = None
        log.info("policy reloaded",
                 extra=log_fields(old=self.current.version, new=policy.version))
        self.current = policy
        return True

    async def watch(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.refresh()
