"""Benchmark: time to first token of streamed requests, over a direct streamed call.

For each concurrency level (20 and 100 concurrent streams by default) a fresh stack starts:
a tansu broker, a private valkey-server, the simulator (``gpt-4o-mini`` scripted with
``--ttft-ms`` before its first chunk, then one word every ``--chunk-delay-ms`` of a
``--tokens``-word reply), router, aggregator, one openai worker and the gateway (no audit:
it does not read the stream topic; ``--audit`` adds it). ``concurrency`` callers then run
streams for ``--seconds`` in a closed loop (aiohttp and aiokafka callers of
``bench/peers/load.py`` and ``bench/loadgen.py``), on three paths one after the other:

1. direct: a streamed chat completion straight to the simulator; time to first
   token (TTFT) = the first chunk with content;
2. gateway: ``POST /v1/chat/completions`` with ``stream: true`` (SSE); TTFT = the
   first chunk with content; done = ``[DONE]``;
3. Kafka: a request with ``stream: true`` on ``modelbus.requests.v1``; TTFT = its first
   event on ``modelbus.stream.v1`` (one plain consumer of that topic and of the responses);
   done = its response.

Printed per level and path: TTFT p50/p99, the TTFT *added* over the direct call (path
percentile minus direct percentile), whole-stream p50, errors, broker records per streamed
request (growth of every topic's end offsets over the phase; stream events per request
apart) and CPU-ms per streamed request of every process (``bench/cpu.py``; the simulator
and the load generator are not counted). Results: ``bench/results/stream.json`` and
``stream.png``.

    uv run python bench/stream_bench.py [--quick] [--levels 20,100] [--seconds 20]
                                        [--tokens 50] [--ttft-ms 100] [--chunk-delay-ms 20]

``--quick`` (or ``QUICK=1``): 4 s per path and level, for a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from modelbus_cli.processes import ProcessGroup
from modelbus_cli.stack import Stack, start_broker, start_redis
from modelbus_gateway.auth import hash_key
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import REQUESTS, STREAM

sys.path.insert(0, str(Path(__file__).parent.parent))
from bench.cpu import CpuMeter, find_redis_pids
from bench.loadgen import HEADERS, Pipeline
from bench.peers.levels import pct
from bench.peers.load import PROMPT, HttpTarget, closed_loop

MODEL, TASK, TENANT = "gpt-4o-mini", "summarize", "bench"
RESULTS = Path(__file__).parent / "results"


def content_of(line: str, name: str) -> str | None:
    """The text of an OpenAI SSE chunk line (``None``: a chunk without content, or not a
    chunk); an error frame raises."""
    if not line.startswith("data: ") or line == "data: [DONE]":
        return None
    chunk = json.loads(line[6:])
    if "error" in chunk:
        raise RuntimeError(f"{name}: {line[:200]}")
    choices = chunk.get("choices") or [{}]
    return (choices[0].get("delta") or {}).get("content") or None


@dataclass
class SseTarget(HttpTarget):
    """A streamed chat completion (``stream: true``): :meth:`call` answers the time to the
    first chunk with content, in ms, and keeps the whole stream's time in ``totals``."""

    totals: list[float] = field(default_factory=list)

    async def call(self) -> float:
        body = {"model": self.model, "messages": PROMPT, "stream": True}
        started, ttft = time.perf_counter(), None
        async with self.session.post(self.url + "/v1/chat/completions", json=body) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{self.name}: HTTP {resp.status} {(await resp.read())[:200]!r}")
            async for raw in resp.content:
                if content_of(raw.decode().strip(), self.name) and ttft is None:
                    ttft = (time.perf_counter() - started) * 1000
        if ttft is None:
            raise RuntimeError(f"{self.name}: a stream without content")
        self.totals.append((time.perf_counter() - started) * 1000)
        return ttft


class KafkaStreams(Pipeline):
    """The Kafka path of a streamed request: the producer and response consumer of
    ``bench/loadgen.py``, the consumer also reading ``modelbus.stream.v1``; :meth:`call`
    answers the time to the request's first stream event and keeps its response's time."""

    name = "kafka"

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self.waiting: dict[bytes, asyncio.Future] = {}  # response key -> its caller
        self.first: dict[bytes, float] = {}  # stream key -> first event (perf_counter)
        self.events: dict[bytes, int] = {}  # stream key -> events seen
        self.totals: list[float] = []

    async def start(self) -> None:
        await super().start()  # the responses' partitions, from their end
        # the consumer's metadata now covers its assignment only: ask the producer's
        tps = self.consumer.assignment() | {
            TopicPartition(STREAM, p) for p in await self.producer.partitions_for(STREAM)}
        self.consumer.assign(list(tps))  # nothing is produced yet: "latest" is the end
        for tp in tps:
            await self.consumer.position(tp)

    async def _read(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for tp, records in batch.items():
                for r in records:
                    if tp.topic == STREAM:
                        self.first.setdefault(r.key, now)
                        self.events[r.key] = self.events.get(r.key, 0) + 1
                    elif (waiter := self.waiting.pop(r.key, None)) and not waiter.done():
                        waiter.set_result((now, r.value))

    async def call(self) -> float:
        rid = f"sb-{uuid.uuid4().hex[:12]}"
        skey = scoped_id(TENANT, rid).encode()
        body = json.dumps({"request_id": rid, "task": TASK, "stream": True,
                           "caller": {"tenant": TENANT}, "messages": PROMPT}).encode()
        waiter = asyncio.get_running_loop().create_future()
        self.waiting[rid.encode()] = waiter
        started = time.perf_counter()
        await self.producer.send(REQUESTS, body, key=rid.encode(),
                                 headers=HEADERS + [("ce_id", rid.encode())])
        try:
            done, value = await asyncio.wait_for(waiter, 120)
        finally:
            self.waiting.pop(rid.encode(), None)
        response = json.loads(value)
        for _ in range(100):  # two topics: one fetch may hand over the response first
            if skey in self.first:
                break
            await asyncio.sleep(0.01)
        if response.get("status") != "ok" or skey not in self.first:
            raise RuntimeError(f"kafka: {response.get('status')} {response.get('error')} "
                               f"({self.events.get(skey, 0)} stream events)")
        self.totals.append((done - started) * 1000)
        return (self.first[skey] - started) * 1000


async def end_offsets_total(bootstrap: str) -> int:
    """Records ever written to every topic of the broker (sum of the end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in await consumer.topics()
               for p in consumer.partitions_for_topic(t) or ()]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def measured(target, args, concurrency: int, stack: Stack, meter: CpuMeter) -> dict:
    """``concurrency`` callers streaming for ``args.seconds`` on one path."""
    await asyncio.sleep(1.0)  # the previous phase's tail settles
    records0, cpu0 = await end_offsets_total(stack.bootstrap), meter.snapshot()
    target.totals.clear()
    out = await closed_loop(target, concurrency, args.seconds)
    await asyncio.sleep(0.5)  # results and responses of the last streams
    cpu = CpuMeter.delta(cpu0, meter.snapshot())
    records = await end_offsets_total(stack.bootstrap) - records0
    n = max(1, len(out.latencies_ms))
    row = {"n": len(out.latencies_ms), "errors": out.errors,
           "first_error": out.first_error or None, "streams_per_s": round(len(out.latencies_ms) / out.seconds, 1),
           "ttft_ms_p50": pct(out.latencies_ms, 0.5), "ttft_ms_p99": pct(out.latencies_ms, 0.99),
           "stream_ms_p50": pct(target.totals, 0.5), "stream_ms_p99": pct(target.totals, 0.99)}
    if target.name != "direct":
        row["broker_records_per_stream"] = round(records / n, 1)
        row["cpu_ms_per_stream"] = round(1000 * sum(cpu.values()) / n, 2)
        row["cpu_ms_per_stream_by_process"] = {k: round(1000 * v / n, 2) for k, v in cpu.items()}
    return row


async def level(stack: Stack, key: str, meter: CpuMeter, args, concurrency: int) -> dict:
    paths = [SseTarget("direct", stack.simulator_url, "bench", MODEL),
             SseTarget("gateway", stack.health["gateway"], key, TASK),
             KafkaStreams(stack.bootstrap)]
    out: dict = {"concurrency": concurrency}
    try:
        for target in paths:
            await target.start()
        for target in paths:  # warm-up: connections, consumer groups, metadata
            await closed_loop(target, 4, 2.0)
        for target in paths:
            out[target.name] = await measured(target, args, concurrency, stack, meter)
            if target.name == "kafka":
                out["kafka"]["stream_events_per_request_p50"] = pct(list(target.events.values()),
                                                                     0.5)
            print_row(concurrency, target.name, out[target.name], out["direct"])
    finally:
        for target in paths:
            await target.stop()
    for name in ("gateway", "kafka"):
        for q in ("p50", "p99"):
            out[name][f"added_ttft_ms_{q}"] = minus(out[name][f"ttft_ms_{q}"],
                                                    out["direct"][f"ttft_ms_{q}"])
    return out


def minus(a: float | None, b: float | None) -> float | None:
    """``a - b``; ``None`` when a path had no successful stream to take a percentile of."""
    return None if a is None or b is None else round(a - b, 1)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_row(concurrency: int, path: str, r: dict, direct: dict) -> None:
    added = "" if path == "direct" else (
        f" (added p50 {ms(minus(r['ttft_ms_p50'], direct['ttft_ms_p50']))},"
        f" p99 {ms(minus(r['ttft_ms_p99'], direct['ttft_ms_p99']))})")
    extra = "" if path == "direct" else (
        f"; {r['broker_records_per_stream']} broker records/stream"
        + (f" ({r['stream_events_per_request_p50']} stream events)"
           if "stream_events_per_request_p50" in r else "")
        + f"; {r['cpu_ms_per_stream']} CPU-ms/stream")
    print(f"  {concurrency:>3} streams {path:<8} TTFT p50 {ms(r['ttft_ms_p50'])} "
          f"p99 {ms(r['ttft_ms_p99'])} ms{added}; stream p50 {ms(r['stream_ms_p50'])} ms; "
          f"{r['n']} ok ({r['streams_per_s']}/s), {r['errors']} errors"
          f"{' (' + r['first_error'] + ')' if r['first_error'] else ''}{extra}", flush=True)


def run_level(args, concurrency: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="modelbus-stream-bench-"))
    group = ProcessGroup(workdir)
    stack = Stack(workdir / "stack", providers=("openai",))
    key = f"sk-bench-{uuid.uuid4().hex}"
    try:
        stack.bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or start_broker(group)
        stack.redis_url = os.environ.get("REDIS_URL") or start_redis(group)
        stack.database_url = f"sqlite+aiosqlite:///{workdir / 'audit.db'}"
        stack.start_simulator()
        httpx.put(f"{stack.simulator_url}/_sim/models/{MODEL}", json={
            "ttft_ms": args.ttft_ms, "chunk_delay_ms": args.chunk_delay_ms,
            "reply": " ".join(f"word{i}" for i in range(args.tokens))}).raise_for_status()
        for name in ("router", "aggregator", *(("audit",) if args.audit else ())):
            stack.start_service(name, f"modelbus_{name}.app")
        stack.start_service("worker-openai", "modelbus_adapter_worker.app",
                            stack.worker_env("openai"))
        keys = [{"key_sha256": hash_key(key), "tenant": TENANT, "team": "bench",
                 "requests_per_min": 0}]  # the benchmark measures, it is not rate limited
        stack.start_service("gateway", "modelbus_gateway.app",
                            {"MODELBUS_API_KEYS": json.dumps(keys)})
        stack.wait_ready()
        pids = {c.name: c.proc.pid for c in [*stack.group.children, *group.children]
                if c.name != "simulator"}
        for pid in find_redis_pids(urlsplit(stack.redis_url).port or 6379):
            if pid not in pids.values():  # a given REDIS_URL's server, not our own child
                pids[f"redis-{pid}"] = pid
        return asyncio.run(level(stack, key, CpuMeter(pids), args, concurrency))
    finally:
        stack.stop()
        group.stop_all()


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = result["levels"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = [f"{lv['concurrency']} streams" for lv in levels]
    xs = range(len(levels))
    for i, (name, q) in enumerate([("gateway", "p50"), ("gateway", "p99"),
                                   ("kafka", "p50"), ("kafka", "p99")]):
        ax1.bar([x + i * 0.2 - 0.3 for x in xs],
                [lv[name][f"added_ttft_ms_{q}"] or 0 for lv in levels], 0.2,
                label=f"{name} {q}")
    ax1.set_xticks(list(xs), labels)
    ax1.set_ylabel("TTFT added over the direct call (ms)")
    ax1.set_title("time to first token, added by modelbus")
    ax1.legend(fontsize=8)
    for i, name in enumerate(("gateway", "kafka")):
        ax2.bar([x + i * 0.35 - 0.175 for x in xs],
                [lv[name]["cpu_ms_per_stream"] for lv in levels], 0.35, label=name)
    ax2.set_xticks(list(xs), labels)
    ax2.set_ylabel("CPU-ms per streamed request (all processes)")
    ax2.set_title(f"CPU cost of a {result['tokens']}-token stream")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", default=bool(os.environ.get("QUICK")))
    parser.add_argument("--levels", default="20,100", help="concurrent streams per level")
    parser.add_argument("--seconds", type=float, default=None,
                        help="closed-loop time per path and level (default 20, quick 4)")
    parser.add_argument("--tokens", type=int, default=50, help="words in the reply")
    parser.add_argument("--ttft-ms", type=float, default=100)
    parser.add_argument("--chunk-delay-ms", type=float, default=20)
    parser.add_argument("--audit", action=argparse.BooleanOptionalAction, default=False)
    args = parser.parse_args()
    args.seconds = args.seconds or (4.0 if args.quick else 20.0)
    result = {"tokens": args.tokens, "ttft_ms": args.ttft_ms,
              "chunk_delay_ms": args.chunk_delay_ms, "seconds": args.seconds,
              "quick": args.quick, "audit": args.audit, "levels": [],
              "load_average_before": os.getloadavg()}
    print(f"provider: TTFT {args.ttft_ms:.0f} ms, then {args.tokens} words "
          f"{args.chunk_delay_ms:.0f} ms apart; {args.seconds:.0f} s per path and level",
          flush=True)
    for concurrency in (int(c) for c in args.levels.split(",")):
        result["levels"].append(run_level(args, concurrency))
    result["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stream.json").write_text(json.dumps(result, indent=2))
    plot(result, RESULTS / "stream.png")
    print("\n== streaming benchmark: TTFT added over a direct streamed call ==")
    for lv in result["levels"]:
        for path in ("gateway", "kafka"):
            r = lv[path]
            print(f"{lv['concurrency']:>3} streams, {path:<7}: added p50 "
                  f"{ms(r['added_ttft_ms_p50'])} ms, p99 {ms(r['added_ttft_ms_p99'])} ms; "
                  f"{r['broker_records_per_stream']} broker records and "
                  f"{r['cpu_ms_per_stream']} CPU-ms per stream; {r['errors']} errors")
    print(f"results: {RESULTS / 'stream.json'}, plot: {RESULTS / 'stream.png'}")


if __name__ == "__main__":
    main()
