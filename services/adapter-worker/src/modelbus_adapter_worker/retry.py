"""The per-target retry policy: which errors are retried, how long to wait between
attempts (exponential backoff with full jitter, or the provider's ``Retry-After``).

Built from the target's :class:`RetrySpec` (router policy), else the worker's defaults.
HTTP errors are retried when their status is in ``retry_on``; errors without a status
(timeouts, broken connections, malformed or truncated answers) when they are retryable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from modelbus_schemas import RetrySpec
from modelbus_schemas.plan import RETRYABLE_STATUS_DEFAULT

from modelbus_adapter_worker.errors import ProviderError

#: A Retry-After longer than this is not waited for: the target counts as exhausted.
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    attempt_timeout_s: float = 30.0
    retry_on: frozenset[int] = frozenset(RETRYABLE_STATUS_DEFAULT)

    @classmethod
    def from_spec(cls, spec: RetrySpec) -> RetryPolicy:
        return cls(
            max_attempts=spec.max_attempts, base_delay_s=spec.base_delay_ms / 1000,
            max_delay_s=spec.max_delay_ms / 1000,
            attempt_timeout_s=spec.attempt_timeout_ms / 1000, retry_on=frozenset(spec.retry_on),
        )

    def should_retry(self, error: ProviderError) -> bool:
        if error.status_code is not None:
            return error.status_code in self.retry_on
        return error.retryable

    def backoff(self, attempt: int, retry_after_s: float | None) -> float | None:
        """Seconds to wait after failed attempt number ``attempt``; None: do not wait that
        long (a Retry-After beyond :data:`MAX_RETRY_AFTER_S`)."""
        if retry_after_s is not None:
            return retry_after_s if retry_after_s <= MAX_RETRY_AFTER_S else None
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))
