"""Dead-lettering: the original bytes and headers, plus typed error headers, to ``<topic>.dlq``.

An oversized original cannot always be republished as is (the broker's message size limit);
then the DLQ record keeps the first ``max_message_bytes`` and says so in
``modelbus_dlq_truncated_from``.

Secret-like strings (:mod:`modelbus_runtime.secret_scan`) in the value or in header values
are masked before the record is written, and ``modelbus_dlq_secrets_masked`` names the kinds
and counts: a dead-letter topic is read by ops and redriven, and a credential pasted into a
bad request must not sit there for the topic's retention. Such a record is redriven masked
(it was unprocessable as it came, and any credential in it must be rotated anyway).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime

from modelbus_schemas import DeadLetterInfo, DlqReason
from modelbus_schemas.deadletter import HEADER_PREFIX
from modelbus_schemas.topics import dlq_topic

from modelbus_runtime.inbound import Inbound
from modelbus_runtime.kafka import EventProducer
from modelbus_runtime.logging import log_fields, scrub
from modelbus_runtime.metrics import DLQ_MESSAGES
from modelbus_runtime.secret_scan import mask_secrets

log = logging.getLogger(__name__)


class DeadLetterPublisher:
    def __init__(self, producer: EventProducer, service: str, max_bytes: int) -> None:
        self.producer = producer
        self.service = service
        self.max_bytes = max_bytes

    async def send(
        self,
        message: Inbound,
        error: BaseException,
        reason: DlqReason,
        *,
        attempts: int = 1,
        first_failure_at: datetime | None = None,
    ) -> None:
        info = DeadLetterInfo.now(
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
            service=self.service,
            error_class=type(error).__name__,
            error_message=scrub(str(error)),
            reason=reason,
            attempts=attempts,
            first_failure_at=first_failure_at or datetime.now(UTC),
        )
        value, found = _masked(message.value)
        headers = []
        for name, raw in message.headers:
            if name.startswith(HEADER_PREFIX):
                continue
            masked, kinds = _masked(raw)
            found.update(kinds)
            headers.append((name, masked))
        headers += info.to_headers()
        if found:
            summary = ",".join(f"{kind}={n}" for kind, n in sorted(found.items()))
            headers.append((HEADER_PREFIX + "secrets_masked", summary.encode()))
        if value is not None and len(value) > self.max_bytes:
            headers.append((HEADER_PREFIX + "truncated_from", str(len(value)).encode()))
            value = value[: self.max_bytes]
        await self.producer.publish_raw(dlq_topic(message.topic), message.key, value, headers)
        DLQ_MESSAGES.labels(topic=message.topic, reason=reason.value).inc()
        log.warning(
            "dead-lettered message",
            extra=log_fields(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                reason=reason.value,
                error_class=info.error_class,
                error=info.error_message,
            ),
        )


def _masked(raw: bytes | None) -> tuple[bytes | None, Counter]:
    """``raw`` with secret-like spans masked (bytes that are not UTF-8 are kept as they are)."""
    if not raw:
        return raw, Counter()
    text = raw.decode("utf-8", "surrogateescape")
    masked, found = mask_secrets(text)
    if not found:
        return raw, found
    return masked.encode("utf-8", "surrogateescape"), found
