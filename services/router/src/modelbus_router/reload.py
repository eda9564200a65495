"""The policy in force, reloaded when its file changes.

At start a bad policy raises :class:`~modelbus_router.policy.PolicyError` (the service
refuses to start with the error naming the field). Afterwards :meth:`PolicySource.refresh`
(polled by :meth:`watch`) loads a changed file; an invalid new version is logged and the
last good one stays in force. Each request reads :attr:`current` once, so a decision is made
under exactly one version.

Metrics (router and gateway, both read their policy through this class):
``modelbus_policy_info{version}`` is 1 for the version in force (one series per process);
``modelbus_policy_reloads_total{outcome="ok|refused"}`` counts reloads, and
``modelbus_policy_reload_refused`` is 1 while the file on disk is a refused version, so the
alert ``ModelbusPolicyReloadRefused`` fires until the file is fixed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from modelbus_runtime.logging import log_fields
from prometheus_client import Counter, Gauge

from modelbus_router.policy import (
    DEFAULT_POLICY_PATH,
    Policy,
    PolicyError,
    content_version,
    load_policy,
    parse_policy,
)

log = logging.getLogger(__name__)

POLICY_INFO = Gauge("modelbus_policy_info", "1 for the routing policy version in force",
                    ["version"])
POLICY_RELOADS = Counter("modelbus_policy_reloads_total",
                         "Policy files loaded after start, by outcome (ok, refused)",
                         ["outcome"])
POLICY_RELOAD_REFUSED = Gauge(
    "modelbus_policy_reload_refused",
    "1 while the policy file is a version that failed to load (the last good one serves)")


class PolicySource:
    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else DEFAULT_POLICY_PATH
        self.current: Policy = load_policy(self.path)
        self.last_error: str | None = None
        self._seen = self.current.version
        self._in_force(None, self.current)
        POLICY_RELOAD_REFUSED.set(0)

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
            POLICY_RELOADS.labels("refused").inc()
            POLICY_RELOAD_REFUSED.set(1)
            log.error("policy reload refused; keeping the last good version",
                      extra=log_fields(error=str(exc), version=self.current.version))
            return False
        self.last_error = None
        log.info("policy reloaded",
                 extra=log_fields(old=self.current.version, new=policy.version))
        POLICY_RELOADS.labels("ok").inc()
        POLICY_RELOAD_REFUSED.set(0)
        self._in_force(self.current, policy)
        self.current = policy
        return True

    @staticmethod
    def _in_force(old: Policy | None, new: Policy) -> None:
        if old is not None and old.version != new.version:
            try:
                POLICY_INFO.remove(old.version)
            except KeyError:
                pass
        POLICY_INFO.labels(new.version).set(1)

    async def watch(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.refresh()
