"""Sample traffic for ``modelbus run``: publish a few requests as an upstream system would
(plain aiokafka, the JSON contract and CloudEvents headers), print their responses and the
lineage of one of them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

SAMPLES = [
    ("summarize", "Summarise: Kafka keeps an ordered, replayable log of events."),
    ("chat", "What is a dead-letter topic for?"),
    ("classify", "Classify the sentiment: the rollout went smoothly."),
    ("summarize", "Summarise: circuit breakers stop calls to a failing provider."),
    ("translate-to-klingon", "This task is not in the policy, so it gets an error response."),
]


def request_body(request_id: str, task: str, text: str) -> bytes:
    return json.dumps({
        "request_id": request_id,
        "task": task,
        "messages": [{"role": "user", "content": text}],
        "caller": {"tenant": "demo", "team": "platform", "user": "ops@example.com"},
        "data_class": "internal",
        "created_at": datetime.now(UTC).isoformat(),
    }).encode()


def headers(request_id: str) -> list[tuple[str, bytes]]:
    return [("ce_specversion", b"1.0"), ("ce_id", request_id.encode()),
            ("ce_source", b"/demo/upstream"), ("ce_type", b"io.modelbus.request.v1"),
            ("content-type", b"application/json")]


async def run_demo(bootstrap: str, timeout: float = 30.0) -> list[dict]:
    run = uuid.uuid4().hex[:6]
    consumer = AIOKafkaConsumer(
        "modelbus.responses.v1", bootstrap_servers=bootstrap, group_id=f"demo-{run}",
        auto_offset_reset="latest", fetch_max_wait_ms=5,
    )
    await consumer.start()
    while not consumer.assignment():
        await asyncio.sleep(0.05)
    await consumer.seek_to_end()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    wanted = {}
    try:
        for i, (task, text) in enumerate(SAMPLES):
            rid = f"demo-{run}-{i}"
            wanted[rid] = time.perf_counter()
            await producer.send_and_wait("modelbus.requests.v1", request_body(rid, task, text),
                                         key=rid.encode(), headers=headers(rid))
        print(f"published {len(wanted)} requests; waiting for responses…", flush=True)
        responses = []
        deadline = time.monotonic() + timeout
        while len(responses) < len(wanted) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    body = json.loads(record.value)
                    if body.get("request_id") in wanted:
                        responses.append(body)
                        _print_response(body, time.perf_counter() - wanted[body["request_id"]])
        return responses
    finally:
        await producer.stop()
        await consumer.stop()


def _print_response(body: dict, elapsed: float) -> None:
    rid, status = body["request_id"], body["status"]
    if status == "ok":
        print(f"  {rid}  ok     {', '.join(body['models'])}  {elapsed * 1000:.0f} ms  "
              f"${body.get('cost_usd', 0):.6f}  → {body['output'][:60]!r}")
    else:
        print(f"  {rid}  {status:6} {body['error']['code']}: {body['error']['message'][:70]}")
