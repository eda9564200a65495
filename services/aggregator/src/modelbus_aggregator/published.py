"""Was a response already published? Read back from the reply topic after a takeover.

A handler that claimed a request, published its response and died before marking it done
leaves a lease that expires; the next handler takes over. Publishing again would answer
the request twice, so the takeover first reads the reply topic from the moment the
response was decided (``offsets_for_times``) to its end, looking for the response's key
and event id. Takeovers follow crashes only, so this costs nothing on the normal path.

The event id is the response's scoped id (tenant and request id), so another tenant's
response to the same request id never counts; and with a key ring only a record whose
signature verifies (a role allowed on the topic) counts, so a forged copy written to the
reply topic cannot suppress the real response.
"""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from modelbus_runtime.errors import TransientInfraError
from modelbus_runtime.signing import KeyRing, Unauthenticated, verify
from modelbus_schemas.topics import writer_roles


def _genuine(ring: KeyRing | None, topic: str, record) -> bool:
    roles = writer_roles(topic)
    if ring is None or roles is None:
        return True
    try:
        verify(ring, topic=topic, key=record.key, value=record.value,
               headers=record.headers or (), allowed_roles=roles)
    except Unauthenticated:
        return False
    return True


async def response_on_topic(bootstrap: str, topic: str, key: str, event_id: str,
                            since_ms: int, ring: KeyRing | None = None,
                            client_options: dict[str, object] | None = None) -> bool:
    """``client_options`` (SASL credentials) win over ``bootstrap`` when given."""
    options = client_options or {"bootstrap_servers": bootstrap}
    consumer = AIOKafkaConsumer(**options, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=20,
                                client_id=f"aggregator-readback-{uuid.uuid4().hex[:6]}")
    try:
        await consumer.start()
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not tps:
            return False
        starts = await consumer.offsets_for_times({tp: since_ms for tp in tps})
        ends = await consumer.end_offsets(tps)
        pending = {}
        consumer.assign(tps)
        for tp in tps:
            start = starts.get(tp)
            if start is None or start.offset >= ends[tp]:
                continue
            consumer.seek(tp, start.offset)
            pending[tp] = ends[tp]
        wanted_key, wanted_id = key.encode(), event_id.encode()
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    if (r.key == wanted_key and ("ce_id", wanted_id) in (r.headers or ())
                            and _genuine(ring, topic, r)):
                        return True
                if await consumer.position(tp) >= pending[tp]:
                    del pending[tp]
        return False
    except KafkaError as exc:
        raise TransientInfraError(f"cannot read back {topic}: {exc!r}") from exc
    finally:
        await consumer.stop()
