"""Helpers of the worker's cross-service tests: the simulator's admin API, task builders,
worker processes on the broker, and reading results."""

from __future__ import annotations

import json
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
from modelbus_cli.stack import Stack
from modelbus_runtime.kafka import EventProducer
from modelbus_runtime.settings import RuntimeSettings
from modelbus_schemas import Caller, ModelRef, ResultEvent, RoutingDecision, TaskEvent
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import tasks_topic


class SimAdmin:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read() or b"{}")

    def behave(self, model: str, **behaviour) -> None:
        self._call("PUT", f"/_sim/models/{model}", behaviour)

    def calls(self, model: str) -> int:
        return self._call("GET", "/_sim/stats")["models"].get(model, {}).get("calls", 0)

    def base_for(self, provider: str) -> str:
        return self.base_url + ("/v1beta" if provider == "gemini" else "/v1")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_task(provider: str, model: str, *, request_id: str | None = None, text: str = "hello",
              tenant: str = "default", **fields) -> TaskEvent:
    """A task as the router sends it: ids scoped by (tenant, request id)."""
    now = datetime.now(UTC)
    request_id = request_id or unique("wk")
    decision = RoutingDecision(policy_version="test-v1", route="test", strategy="single",
                               selected=[ModelRef(provider=provider, model=model)],
                               decided_at=now)
    fields.setdefault("messages", [{"role": "user", "content": text}])
    return TaskEvent(event_id=TaskEvent.make_id(scoped_id(tenant, request_id), 0),
                     request_id=request_id, caller=Caller(tenant=tenant), task="test",
                     part_id=0, parts_total=1, provider=provider, model=model,
                     received_at=now, decision=decision, **fields)


def start_workers(workdir: Path, worker_stack: Stack, workers: dict[str, dict[str, str]]) -> Stack:
    """Worker processes (name -> (provider, extra env)) in their own process group, sharing
    the session's broker, Redis and simulator."""
    stack = Stack(workdir, providers=())
    stack.bootstrap, stack.redis_url = worker_stack.bootstrap, worker_stack.redis_url
    stack.database_url, stack.simulator_url = worker_stack.database_url, worker_stack.simulator_url
    try:
        for name, env in workers.items():
            provider = env["MODELBUS_PROVIDER"]
            stack.start_service(name, "modelbus_adapter_worker.app",
                                {**stack.worker_env(provider), **env})
        stack.wait_ready()
    except BaseException:
        stack.stop()
        raise
    return stack


async def handle_in_process(sim: SimAdmin, redis_url: str, provider: str, model: str, *,
                            stream: bool = True, settings: dict | None = None,
                            **task_fields) -> ResultEvent:
    """One task through the handler app.py builds, in this process, against the simulator
    over real HTTP and the machine's Redis; the result it would publish."""
    import redis.asyncio as aioredis
    from modelbus_adapter_worker.app import build_handler
    from modelbus_adapter_worker.settings import WorkerSettings
    from modelbus_adapter_worker.transport import HttpTransport

    config = WorkerSettings(provider=provider, base_url=sim.base_for(provider),
                            redis_url=redis_url, stream=stream, **(settings or {}))
    client = aioredis.Redis.from_url(redis_url, socket_timeout=0.5)
    transport = HttpTransport(config.resolved_base_url(), max_connections=10)
    try:
        out = await build_handler(config, client, transport).handle(
            make_task(provider, model, **task_fields))
        return ResultEvent.model_validate(orjson.loads(out.value))
    finally:
        await transport.close()
        await client.aclose()


class TaskPublisher:
    def __init__(self, bootstrap: str) -> None:
        self.producer = EventProducer(RuntimeSettings(kafka_bootstrap_servers=bootstrap), "tests",
                                      role="router")

    async def __aenter__(self) -> TaskPublisher:  # noqa: PYI034
        await self.producer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.producer.stop()

    async def send(self, task: TaskEvent) -> None:
        await self.producer.publish(tasks_topic(task.provider), task, key=task.request_id,
                                    event_id=task.event_id)


def bodies(records) -> list[dict]:
    return [orjson.loads(r.value) for r in records]


def metric(text: str, name: str) -> float:
    """Sum of a Prometheus metric's samples (all label sets) in an exposition text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head = line.split(" ")[0]
            if head == name or head.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        return resp.read().decode()
