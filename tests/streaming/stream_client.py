"""A streamed request as a plain upstream sees it: the request JSON with ``stream: true`` on
the requests topic, its stream events read with plain aiokafka from ``modelbus.stream.v1``
and its one response from ``modelbus.responses.v1``, each timed when it arrives (no
modelbus helpers, only the documented contract); and the simulator's streaming script."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field

from tests.upstream import RESPONSES, TailReader, Upstream

STREAM = "modelbus.stream.v1"
CHUNK_DELAY_MS = 20  # the simulator sends one word every 20 ms...
REPLY_WORDS = 100  # ...of a 100-word reply: about 2 s
REPLY = " ".join(f"token{i:03d}" for i in range(REPLY_WORDS))
TERMINAL = ("end", "error")


def streaming_behaviour(**extra) -> dict:
    """The simulator script of every chat model here (see the simulator's README)."""
    return {"chunk_delay_ms": CHUNK_DELAY_MS, "reply": REPLY, **extra}


def stream_key(tenant: str, request_id: str) -> bytes:
    """The Kafka key of a request's stream events, as the contract documents it."""
    return f"{len(tenant)}:{tenant}:{request_id}".encode()


@dataclass
class StreamRun:
    """What one streamed request produced, in arrival order; times in seconds after the
    request was sent."""

    request_id: str
    response: dict
    total_s: float  # until the final response arrived
    events: list[dict] = field(default_factory=list)  # this request's, one per event id
    arrivals: list[float] = field(default_factory=list)
    keys: set[bytes] = field(default_factory=set)
    others: list[dict] = field(default_factory=list)  # other requests' events seen meanwhile

    @property
    def ttft_s(self) -> float:
        return self.arrivals[0]

    @property
    def text(self) -> str:
        return "".join(event["text"] for event in self.events)


async def _read_events(reader: TailReader, run: StreamRun, answered: asyncio.Event,
                       grace_s: float, deadline: float, sent: float) -> None:
    """Until the request's stream ended and its response arrived, or ``grace_s`` after the
    response when no stream ends (a request that must not stream)."""
    seen: set[str] = set()
    answered_at = None
    while time.monotonic() < deadline:
        if answered.is_set():
            answered_at = answered_at or time.monotonic()
            ended = run.events and run.events[-1]["kind"] in TERMINAL
            if ended or time.monotonic() - answered_at > grace_s:
                return
        batch = await reader.consumer.getmany(timeout_ms=20)
        now = time.monotonic() - sent
        for records in batch.values():
            for record in records:
                event = json.loads(record.value)
                if event.get("request_id") != run.request_id:
                    run.others.append(event)
                elif event["event_id"] not in seen:  # consumers deduplicate by event id
                    seen.add(event["event_id"])
                    run.events.append(event)
                    run.arrivals.append(now)
                    run.keys.add(record.key)


async def stream_request(stack, body: dict, *, grace_s: float = 1.5,
                         timeout: float = 90.0) -> StreamRun:
    """Send ``body`` (task, messages, params...) as ``stack``'s tenant with ``stream: true``;
    read its stream events and its response."""
    rid = f"strm-{uuid.uuid4().hex[:10]}"
    request = {"request_id": rid, "caller": {"tenant": stack.tenant, "team": "agents"},
               "stream": True, **body}
    async with Upstream(stack.bootstrap) as upstream:
        events, responses = await upstream.tail(STREAM), await upstream.tail(RESPONSES)
        try:
            answered = asyncio.Event()
            sent = time.monotonic()
            run = StreamRun(rid, {}, 0.0)
            reading = asyncio.create_task(
                _read_events(events, run, answered, grace_s, sent + timeout, sent))
            await upstream.send(request)
            found = await responses.collect(lambda r: r.key == rid.encode(), 1, timeout=timeout)
            run.total_s = time.monotonic() - sent
            answered.set()
            await reading
        finally:
            await events.stop()
            await responses.stop()
    assert found, f"no response to {rid} within {timeout} s"
    run.response = json.loads(found[0].value)
    return run
