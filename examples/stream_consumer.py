"""Read one request's answer from modelbus.stream.v1 as it is produced (plain aiokafka).

Assigns every partition of the stream topic and of the reply topic at their end (no
consumer group), then, with ``--text``, publishes a streaming request itself. Prints the
text deltas of the request as they arrive, in ``seq`` order, duplicates skipped; stops at
the stream's ``end`` or ``error`` event, and then waits for the final response (the source
of truth), which it prints too. A request whose route does not stream has no stream
events: the response alone answers it.

    python examples/stream_consumer.py --bootstrap localhost:9092 --tenant acme \\
        --text "Explain Kafka in one paragraph" --task summarize
    python examples/stream_consumer.py --tenant acme --request-id req-0001   # already sent

See docs/streaming.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

STREAM = "modelbus.stream.v1"
REQUESTS = "modelbus.requests.v1"
RESPONSES = "modelbus.responses.v1"


def scoped_id(tenant: str, request_id: str) -> str:
    """The stream topic's key of a request: the tenant, length-prefixed, and the id."""
    return f"{len(tenant)}:{tenant}:{request_id}"


async def at_end(consumer: AIOKafkaConsumer, topics: list[str]) -> None:
    """Assign every partition of ``topics`` and pin the position at the end."""
    tps = []
    for topic in topics:
        for _ in range(100):
            await consumer.topics()  # refreshes the metadata
            parts = consumer.partitions_for_topic(topic)
            if parts:
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit(f"topic {topic} does not exist")
        tps += [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)


async def follow(consumer: AIOKafkaConsumer, tenant: str, request_id: str,
                 on_delta: Callable[[dict], None], reply_topic: str = RESPONSES,
                 timeout_s: float = 120.0) -> dict:
    """Hand each stream event of the request to ``on_delta`` in ``seq`` order, until its
    ``end``/``error``; return the final response (JSON) from ``reply_topic``."""
    key = scoped_id(tenant, request_id).encode()
    next_seq, ended = 0, False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        batches = await consumer.getmany(timeout_ms=200)
        for tp, records in batches.items():
            for record in records:
                if tp.topic == STREAM and record.key == key and not ended:
                    event = json.loads(record.value)
                    if event["seq"] < next_seq:
                        continue  # delivered twice
                    next_seq = event["seq"] + 1
                    on_delta(event)
                    ended = event["kind"] in ("end", "error")
                elif tp.topic == reply_topic and record.key == request_id.encode():
                    response = json.loads(record.value)
                    if response.get("tenant") == tenant:
                        return response  # the source of truth; stream events may still lag
    raise TimeoutError(f"no response for {request_id} within {timeout_s} s")


def request_json(tenant: str, request_id: str, task: str, text: str,
                 reply_topic: str = RESPONSES) -> dict:
    return {"request_id": request_id, "task": task, "stream": True, "reply_to": reply_topic,
            "messages": [{"role": "user", "content": text}],
            "caller": {"tenant": tenant, "team": "examples", "user": "stream-consumer"}}


async def publish(bootstrap: str, request: dict) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        rid = request["request_id"]
        headers = [("ce_specversion", b"1.0"), ("ce_id", rid.encode()),
                   ("ce_source", b"/examples/stream_consumer"),
                   ("ce_type", b"io.modelbus.request.v1"),
                   ("content-type", b"application/json")]
        await producer.send_and_wait(REQUESTS, json.dumps(request).encode(),
                                     key=rid.encode(), headers=headers)
    finally:
        await producer.stop()


def print_delta(event: dict) -> None:
    if event["kind"] == "error":
        print(f"\n[stream error: {event['error']['code']}: {event['error']['message']}]")
        return
    print(event.get("text", ""), end="", flush=True)
    for call in event.get("tool_calls", []):
        head = f"[tool call {call['index']} {call.get('name') or ''}] " if call.get("id") else ""
        print(head + call.get("arguments", ""), end="", flush=True)
    if event["kind"] == "end":
        print(f"\n[end: {event.get('finish_reason')}]")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="localhost:9092")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--request-id", default=None)
    parser.add_argument("--text", default=None, help="publish a streaming request first")
    parser.add_argument("--task", default="summarize")
    parser.add_argument("--reply-topic", default=RESPONSES)
    args = parser.parse_args(argv)
    if not args.text and not args.request_id:
        parser.error("give --request-id (a request already sent) or --text (send one)")
    request_id = args.request_id or f"stream-{uuid.uuid4().hex[:12]}"
    consumer = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    try:
        await at_end(consumer, [STREAM, args.reply_topic])  # before the request is sent
        if args.text:
            await publish(args.bootstrap, request_json(args.tenant, request_id, args.task,
                                                       args.text, args.reply_topic))
        response = await follow(consumer, args.tenant, request_id, print_delta,
                                args.reply_topic)
    finally:
        await consumer.stop()
    print(f"\n[response {response['status']}] {response.get('output') or ''}")
    if response.get("error"):
        print(f"[error {response['error']['code']}] {response['error']['message']}")
    return 0 if response["status"] != "error" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
