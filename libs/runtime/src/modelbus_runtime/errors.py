"""The error hierarchy: every failure is retryable or terminal, and that decides what happens.

* :class:`TransientInfraError` — a dependency of ours (Redis, the audit store, the broker) is
  unavailable. The consumer retries the same message in place with backoff and does not
  commit past it: nothing is lost, the partition catches up when the dependency returns.
* :class:`PoisonMessage` — the message can never be processed (not JSON, wrong schema,
  oversized). It goes to the dead-letter topic with its original bytes.
* Provider errors (see the adapter worker) are classified retryable or terminal; retryable
  ones are retried by the worker's retry policy, terminal ones become error results.
"""

from __future__ import annotations

from modelbus_schemas import DlqReason


class ModelbusError(Exception):
    retryable: bool = False
    dlq_reason: DlqReason = DlqReason.UNHANDLED


class TransientInfraError(ModelbusError):
    """A dependency is down; retry in place, never dead-letter, never skip."""

    retryable = True


class PoisonMessage(ModelbusError):
    """A message that can never be processed; dead-letter it with the original bytes."""

    def __init__(self, message: str, reason: DlqReason = DlqReason.SCHEMA) -> None:
        super().__init__(message)
        self.dlq_reason = reason
