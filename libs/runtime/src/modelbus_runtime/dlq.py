"""Dead-lettering: the original bytes and headers, plus typed error headers, to ``<topic>.dlq``.

An oversized original cannot always be republished as is (the broker's message size limit);
then the DLQ record keeps the first ``max_message_bytes`` and says so in
``modelbus_dlq_truncated_from``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from modelbus_schemas import DeadLetterInfo, DlqReason
from modelbus_schemas.deadletter import HEADER_PREFIX
from modelbus_schemas.topics import dlq_topic

from modelbus_runtime.inbound import Inbound
from modelbus_runtime.kafka import EventProducer
from modelbus_runtime.logging import log_fields, scrub
from modelbus_runtime.metrics import DLQ_MESSAGES

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
        value = message.value
        headers = [(k, v) for k, v in message.headers if not k.startswith(HEADER_PREFIX)]
        headers += info.to_headers()
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
