"""Where a request's latency goes, stage by stage, and the broker hop on its own.

Two measurements in one run on the embedded broker:

1. **The bare hop**: one aiokafka producer and one consumer, a record every ~50 ms, at
   several consumer fetch waits. tansu answers a fetch by reading its storage once and then
   sleeping out the rest of the wait: a record that arrives during that sleep is returned by
   the *next* fetch. So a hop costs up to one fetch wait, not the ~1 ms a broker that wakes
   waiting fetches (Apache Kafka) gives.
2. **The stages of the pipeline** at low load (default 20 req/s, provider at 50 ms): every
   stage stamps its record's CreateTime when it publishes, so request → task is the router
   (its hop plus its handler), task → result the worker (hop, provider call, handler),
   result → response the aggregator, and response → receipt the caller's own hop.

    uv run python bench/stages_bench.py [--rate 20] [--seconds 8] [--waits 5,25,100]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import Pipeline
from modelbus_cli.stack import Stack
from modelbus_schemas.topics import REQUESTS, RESPONSES, RESULTS, tasks_topic
from pipeline_bench import pct, set_latency

RESULTS_DIR = Path(__file__).parent / "results"
HOP_TOPIC = "bench.hop"


async def bare_hop(bootstrap: str, wait_ms: int, records: int = 60) -> dict:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    await producer.send_and_wait(HOP_TOPIC, b"warm")
    consumer = AIOKafkaConsumer(HOP_TOPIC, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="latest", fetch_max_wait_ms=wait_ms)
    await consumer.start()
    await asyncio.sleep(1.0)
    sent: dict[bytes, float] = {}
    latencies: list[float] = []

    async def read() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            now = time.perf_counter()
            for batch_records in batch.values():
                latencies.extend((now - sent[r.value]) * 1000 for r in batch_records
                                 if r.value in sent)

    reader = asyncio.create_task(read())
    try:
        for i in range(records):
            value = str(i).encode()
            sent[value] = time.perf_counter()
            await producer.send(HOP_TOPIC, value)
            await asyncio.sleep(0.05 + (i % 7) * 0.003)  # not in step with the fetch loop
        await asyncio.sleep(wait_ms / 1000 * 2 + 0.3)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await producer.stop()
        await consumer.stop()
    return {"wait_ms": wait_ms, "n": len(latencies), "p10": pct(latencies, 10),
            "p50": pct(latencies, 50), "p90": pct(latencies, 90)}


async def stages(stack: Stack, rate: float, seconds: float) -> dict:
    pipeline = Pipeline(stack.bootstrap)
    await pipeline.start()
    set_latency(stack, 50)
    await pipeline.run(50, 2)  # warm up
    topics = [REQUESTS, tasks_topic("openai"), RESULTS, RESPONSES]
    watcher = AIOKafkaConsumer(*topics, bootstrap_servers=stack.bootstrap, group_id=None,
                               auto_offset_reset="latest", fetch_max_wait_ms=5)
    await watcher.start()
    await asyncio.sleep(2.0)
    stamped: dict[str, dict[str, int]] = {}

    async def watch() -> None:
        while True:
            batch = await watcher.getmany(timeout_ms=100)
            for tp, records in batch.items():
                for r in records:
                    stamped.setdefault(r.key.decode(), {})[tp.topic] = r.timestamp

    task = asyncio.create_task(watch())
    try:
        await pipeline.run(rate, seconds)
        await asyncio.sleep(1.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await watcher.stop()
        await pipeline.stop()
    names = ["router (request → task)", "worker (task → result)",
             "aggregator (result → response)", "caller's hop (response → receipt)"]
    spans: dict[str, list[float]] = {n: [] for n in names}
    for rid, at in stamped.items():
        if len(at) < 4 or rid not in pipeline.latency:
            continue
        for name, (a, b) in zip(names[:3], itertools.pairwise(topics), strict=True):
            spans[name].append(at[b] - at[a])
        spans[names[3]].append(pipeline.latency[rid] - (at[RESPONSES] - at[REQUESTS]))
    return {name: {"n": len(v), "p50": pct(v, 50), "p90": pct(v, 90)}
            for name, v in spans.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--waits", default="5,25,100")
    args = parser.parse_args()
    stack = Stack(Path(tempfile.mkdtemp(prefix="modelbus-stages-")))
    print("starting the stack…", flush=True)
    stack.start()
    out: dict = {}
    try:
        print("bare broker hop (one producer, one consumer, ~20 records/s):", flush=True)
        out["bare_hop"] = []
        for wait in (int(w) for w in args.waits.split(",")):
            row = asyncio.run(bare_hop(stack.bootstrap, wait))
            out["bare_hop"].append(row)
            print(f"  fetch wait {wait:>4} ms: hop p10 {row['p10']:.1f}  p50 {row['p50']:.1f}"
                  f"  p90 {row['p90']:.1f} ms", flush=True)
        print(f"pipeline stages at {args.rate:.0f} req/s, provider at 50 ms "
              "(record CreateTime to CreateTime):", flush=True)
        out["stages"] = asyncio.run(stages(stack, args.rate, args.seconds))
        for name, row in out["stages"].items():
            print(f"  {name:36} p50 {row['p50']:6.1f}  p90 {row['p90']:6.1f} ms  (n={row['n']})")
    finally:
        stack.stop()
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "stages.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
