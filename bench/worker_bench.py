"""Benchmark: one adapter-worker process against a provider that answers in 1.5 s.

Starts (or reuses) a broker and Redis, starts the provider simulator with a 1.5 s latency
and ONE worker process, then publishes tasks open-loop at ``--rate`` per second for
``--duration`` seconds and reads the results. Prints the sustained results/s over the
steady window, the provider calls and messages in flight in the worker (sampled from its
/metrics), the worker's CPU-ms per request, and result latency percentiles.

    uv run python bench/worker_bench.py [--rate 700] [--duration 30] [--latency-ms 1500]
                                        [--provider openai] [--stream/--no-stream]

``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` point at existing ones; else a tansu broker and
(if 127.0.0.1:6379 does not answer) a private valkey-server are started.

The tasks are signed as the router signs them (``modelbus_runtime.signing``, the stack's key
ring): the worker refuses unsigned tasks to the DLQ as unauthenticated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from modelbus_cli.processes import ProcessGroup, free_port, http_ok, wait_for
from modelbus_cli.stack import Stack, redis_reachable, start_broker, start_redis
from modelbus_runtime.signing import KeyRing, Signer
from modelbus_schemas import ModelRef, RoutingDecision, TaskEvent, encode
from modelbus_schemas import cloudevents as ce
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import RESULTS, ROUTER, tasks_topic

MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash",
         "selfhosted": "llama-3.1-8b"}


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        head = line.split(" ")[0]
        if head == name or head.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=2) as resp:
        return resp.read().decode()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _set_latency(sim_url: str, latency_ms: int) -> None:
    req = urllib.request.Request(sim_url + "/_sim/models/default", method="PUT",
                                 data=json.dumps({"latency_ms": latency_ms}).encode(),
                                 headers={"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=5).read()


def _template(provider: str) -> TaskEvent:
    now = datetime.now(UTC)
    model = MODEL[provider]
    return TaskEvent(
        event_id="x", request_id="x", task="bench", part_id=0, parts_total=1,
        provider=provider, model=model,
        messages=[{"role": "user", "content": "Summarise: Kafka is a distributed log."}],
        received_at=now, decision=RoutingDecision(
            policy_version="bench", route="bench", strategy="single",
            selected=[ModelRef(provider=provider, model=model)], decided_at=now))


async def _run(args, bootstrap: str, worker_url: str, worker_pid: int, signing_keys: str) -> dict:
    run = uuid.uuid4().hex[:6]
    signer = Signer(KeyRing.parse(signing_keys), ROUTER)
    template = _template(args.provider)
    body = orjson.loads(encode(template))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=20)
    await producer.start()
    await consumer.start()
    for _ in range(100):
        parts = consumer.partitions_for_topic(RESULTS)
        if parts:
            break
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    tps = [TopicPartition(RESULTS, p) for p in sorted(parts)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)

    sent, done_at, latencies, errors, samples = 0, [], [], 0, []
    total = int(args.rate * args.duration)
    stop = asyncio.Event()

    async def produce() -> None:
        nonlocal sent
        start = time.monotonic()
        topic = tasks_topic(args.provider)
        while sent < total:
            due = int((time.monotonic() - start) * args.rate) + 1
            batch = []
            while sent < min(due, total):
                rid = f"bench-{run}-{sent}"
                event_id = TaskEvent.make_id(scoped_id(template.tenant, rid), 0)
                body["request_id"], body["event_id"] = rid, event_id
                value, key = orjson.dumps(body), rid.encode()
                headers = ce.ce_headers(event_id=event_id, ce_type=TaskEvent.CE_TYPE,
                                        source="/bench")
                headers.append(signer.header(topic, key, value, event_id.encode(),
                                             TaskEvent.CE_TYPE.encode()))
                batch.append(producer.send(topic, value, key=key, headers=headers))
                sent += 1
            if batch:
                await asyncio.gather(*batch)
            await asyncio.sleep(0.005)

    async def consume() -> None:
        nonlocal errors
        prefix = f"bench-{run}-".encode()
        while len(done_at) < total and not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            for records in batch.values():
                for r in records:
                    if r.key and r.key.startswith(prefix):
                        result = orjson.loads(r.value)
                        done_at.append(now)
                        latencies.append(result.get("latency_ms", 0.0))
                        errors += result["status"] != "ok"

    async def sample() -> None:
        while not stop.is_set():
            try:
                text = await asyncio.to_thread(_scrape, worker_url)
                samples.append((_metric(text, "modelbus_provider_calls_in_flight"),
                                _metric(text, "modelbus_in_flight_messages")))
            except OSError:
                pass
            await asyncio.sleep(1.0)

    cpu0, t0 = _cpu_seconds(worker_pid), time.monotonic()
    sampler = asyncio.create_task(sample())
    consumer_task = asyncio.create_task(consume())
    await produce()
    try:
        await asyncio.wait_for(consumer_task, timeout=args.latency_ms / 1000 * 4 + 30)
    except TimeoutError:
        stop.set()
    cpu1, t1 = _cpu_seconds(worker_pid), time.monotonic()
    stop.set()
    await sampler
    await producer.stop()
    await consumer.stop()

    # Steady window: after the first latency period (pipeline filling), until sending stopped.
    lo, hi = t0 + args.latency_ms / 1000 + 2, t0 + args.duration
    steady = [t for t in done_at if lo <= t <= hi]
    calls = [s[0] for s in samples[2:int(args.duration)]] or [0.0]
    msgs = [s[1] for s in samples[2:int(args.duration)]] or [0.0]
    lat = sorted(latencies) or [0.0]
    return {
        "offered_rps": args.rate, "sent": sent, "results": len(done_at), "errors": errors,
        "sustained_rps": round(len(steady) / max(hi - lo, 1e-9), 1),
        "overall_rps": round(len(done_at) / max((max(done_at) if done_at else t1) - t0, 1e-9), 1),
        "provider_calls_in_flight_avg": round(statistics.mean(calls)),
        "provider_calls_in_flight_max": int(max(calls)),
        "messages_in_flight_max": int(max(msgs)),
        "worker_cpu_ms_per_request": round((cpu1 - cpu0) * 1000 / max(len(done_at), 1), 3),
        "result_latency_ms_p50": round(lat[len(lat) // 2], 1),
        "result_latency_ms_p99": round(lat[int(len(lat) * 0.99) - 1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=700.0, help="tasks offered per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of sending")
    parser.add_argument("--latency-ms", type=int, default=1500)
    parser.add_argument("--provider", default="openai", choices=sorted(MODEL))
    parser.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="modelbus-bench-"))
    group = ProcessGroup(workdir)
    stack = Stack(workdir / "stack", providers=())
    try:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or start_broker(group)
        wanted = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        redis_url = wanted if redis_reachable(wanted) else start_redis(group)
        stack.bootstrap, stack.redis_url = bootstrap, redis_url
        stack.database_url = "sqlite+aiosqlite:///unused.db"
        stack.start_simulator()
        _set_latency(stack.simulator_url, args.latency_ms)
        port = free_port()
        env = {**stack.service_env(port), **stack.worker_env(args.provider),
               "MODELBUS_STREAM": str(args.stream).lower(), "MODELBUS_LOG_LEVEL": "WARNING",
               "MODELBUS_MAX_IN_FLIGHT": "4000", "MODELBUS_MAX_CONNECTIONS": "4000"}
        worker = stack.group.python_module("worker", "modelbus_adapter_worker.app", env)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(url + "/readyz"), "worker", 60, worker.proc)
        print(f"bench: 1 {args.provider} worker (stream={args.stream}), provider latency "
              f"{args.latency_ms} ms, offering {args.rate:.0f} tasks/s for {args.duration:.0f} s")
        report = asyncio.run(_run(args, bootstrap, url, worker.proc.pid, stack.signing_keys()))
        width = max(len(k) for k in report)
        for key, value in report.items():
            print(f"  {key:<{width}}  {value}")
    finally:
        stack.stop()
        group.stop_all()


if __name__ == "__main__":
    main()
