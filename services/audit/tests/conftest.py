"""Fixtures for the audit tests: a store on SQLite and on PostgreSQL, and real contract events.

PostgreSQL: the server of ``DATABASE_URL`` when it is a PostgreSQL URL, else the machine's
server at 127.0.0.1:5432 as ``postgres``. One fresh database per test session, dropped at the
end; tables are emptied before each test.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from modelbus_audit.record import AuditRecord
from modelbus_audit.store import AuditStore
from modelbus_audit.tables import metadata
from modelbus_schemas import (
    AttemptRecord,
    Caller,
    ChatMessage,
    DeadLetterInfo,
    DlqReason,
    ErrorInfo,
    ModelRef,
    PartSummary,
    Rejection,
    RequestEvent,
    ResponseEvent,
    ResultEvent,
    RoutingDecision,
    TaskEvent,
    Usage,
    encode,
)
from modelbus_schemas import cloudevents as ce
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import REQUESTS, RESPONSES, RESULTS, dlq_topic, tasks_topic
from sqlalchemy import delete
from sqlalchemy.engine import make_url

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
_offsets = itertools.count(100)


def _server_url() -> str:
    env = os.environ.get("DATABASE_URL", "")
    if env.split("://", 1)[0].split("+", 1)[0] in ("postgres", "postgresql"):
        return env
    return "postgresql://postgres@127.0.0.1:5432/postgres"


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def postgres_url():
    server = make_url(_server_url().replace("postgres://", "postgresql://", 1))
    name = f"modelbus_audit_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_asyncpg_dsn(server.render_as_string(hide_password=False)))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield server.set(database=name).render_as_string(hide_password=False)
    admin = await asyncpg.connect(_asyncpg_dsn(server.render_as_string(hide_password=False)))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def _empty_database(server: str) -> AsyncIterator[str]:
    if server.startswith("sqlite"):
        yield server
        return
    base = make_url(server)
    name = f"modelbus_audit_mig_{uuid.uuid4().hex[:8]}"
    dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def empty_database():
    """``async with empty_database(server) as url``: a SQLite URL as given, or a new empty
    database on the PostgreSQL server ``server`` (dropped afterwards)."""
    return _empty_database


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def store(store_url):
    audit = await AuditStore.open(store_url)
    async with audit.engine.begin() as connection:  # PostgreSQL: the session database is shared
        for table in metadata.sorted_tables:
            await connection.execute(delete(table))
    yield audit
    await audit.close()


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int

    def record(self) -> AuditRecord:
        return AuditRecord.from_message(
            self.topic, self.partition, self.offset, self.key, self.value,
            self.headers, self.timestamp_ms,
        )


def message_for(event, topic: str, at: datetime, partition: int = 0, extra=None) -> Message:
    event_id = event.event_id() if callable(event.event_id) else event.event_id
    headers = ce.ce_headers(
        event_id=event_id, ce_type=type(event).CE_TYPE, source="tests", time=at, extra=extra
    )
    return Message(
        topic, partition, next(_offsets), event.request_id.encode(), encode(event), headers,
        int(at.timestamp() * 1000),
    )


@dataclass
class Flow:
    """One request's events as the services would publish them, in publication order."""

    request_id: str
    request: Message
    tasks: list[Message]
    results: list[Message]
    response: Message
    decision: RoutingDecision
    messages: list[Message] = field(default_factory=list)

    def records(self) -> list[AuditRecord]:
        return [m.record() for m in self.messages]


def make_flow(request_id: str = "req-1", start: datetime = T0, tenant: str = "acme",
              team: str = "support") -> Flow:
    """request → 2 tasks (openai, anthropic) → 2 results (one after a 429 retry) → response.
    The response has the same event time as the last result, to exercise the kind order."""
    caller = Caller(tenant=tenant, team=team, user="ana")
    messages = [ChatMessage(role="user", content="Summarise: Kafka is a log.")]
    request = RequestEvent(
        request_id=request_id, task="summarize", messages=messages, caller=caller,
        data_class="confidential", metadata={"api_key": "sk-should-not-be-stored"},
    )
    decision = RoutingDecision(
        policy_version="v7", route="summarize-confidential", strategy="parallel",
        selected=[ModelRef(provider="openai", model="gpt-4o-mini"),
                  ModelRef(provider="anthropic", model="claude-haiku")],
        rejected=[Rejection(provider="gemini", model="gemini-pro", reason="region not allowed")],
        decided_at=start + timedelta(milliseconds=5),
    )
    scope = scoped_id(caller.tenant, request_id)
    tasks, results = [], []
    for part, ref in enumerate(decision.selected):
        tasks.append(TaskEvent(
            event_id=TaskEvent.make_id(scope, part), request_id=request_id,
            task="summarize", part_id=part, parts_total=2, provider=ref.provider,
            model=ref.model, messages=messages, caller=caller, data_class="confidential",
            received_at=start, decision=decision,
        ))
    attempts_0 = [
        AttemptRecord(number=1, started_at=start + timedelta(milliseconds=20), latency_ms=40.0,
                      status_code=429, outcome="error", error_code="rate_limited"),
        AttemptRecord(number=2, started_at=start + timedelta(milliseconds=200), latency_ms=90.5,
                      status_code=200, outcome="ok"),
    ]
    results.append(ResultEvent(
        event_id=ResultEvent.make_id(scope, 0), request_id=request_id, tenant=tenant,
        task="summarize",
        part_id=0, parts_total=2, provider="openai", model="gpt-4o-mini", status="ok",
        text="Kafka is a distributed log.", usage=Usage(input_tokens=12, output_tokens=7),
        cost_usd=0.00012, latency_ms=290.0, attempts=attempts_0, received_at=start,
        policy_version="v7",
    ))
    results.append(ResultEvent(
        event_id=ResultEvent.make_id(scope, 1), request_id=request_id, tenant=tenant,
        task="summarize",
        part_id=1, parts_total=2, provider="anthropic", model="claude-haiku", status="error",
        error=ErrorInfo(code="provider_terminal", message="bad request"), latency_ms=80.0,
        attempts=[AttemptRecord(number=1, started_at=start, latency_ms=80.0, status_code=400,
                                outcome="error", error_code="bad_request")],
        received_at=start, policy_version="v7",
    ))
    response = ResponseEvent(
        event_id=ResponseEvent.make_id(scope), request_id=request_id, tenant=tenant,
        task="summarize",
        status="partial", output="Kafka is a distributed log.", models=["openai/gpt-4o-mini"],
        parts=[PartSummary(part_id=0, provider="openai", model="gpt-4o-mini", status="ok",
                           cost_usd=0.00012),
               PartSummary(part_id=1, provider="anthropic", model="claude-haiku",
                           status="error", error_code="provider_terminal")],
        cost_usd=0.00012, policy_version="v7", created_at=start,
    )
    at = lambda ms: start + timedelta(milliseconds=ms)
    req_msg = message_for(request, REQUESTS, at(0))
    task_msgs = [message_for(t, tasks_topic(t.provider), at(10)) for t in tasks]
    result_msgs = [message_for(results[0], RESULTS, at(300)),
                   message_for(results[1], RESULTS, at(400))]
    resp_msg = message_for(response, RESPONSES, at(400))
    flow = Flow(request_id, req_msg, task_msgs, result_msgs, resp_msg, decision)
    flow.messages = [req_msg, *task_msgs, *result_msgs, resp_msg]
    return flow


@pytest.fixture
def flow() -> Flow:
    return make_flow(f"req-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def new_flow():
    """A factory of flows (tests cannot import conftest under --import-mode=importlib)."""
    return make_flow


@pytest.fixture
def message_factory():
    return message_for


def dead_letter_of(
    original: Message,
    *,
    body: bytes | None = None,
    reason: DlqReason = DlqReason.SCHEMA,
    error: str = "body is not valid JSON",
    extra_headers: list[tuple[str, bytes]] | None = None,
) -> tuple[Message, DeadLetterInfo]:
    """The DLQ message the runtime would publish for ``original`` (optionally other bytes)."""
    info = DeadLetterInfo.now(
        source_topic=original.topic, source_partition=original.partition,
        source_offset=original.offset, service="router", error_class="DecodeError",
        error_message=error, reason=reason,
    )
    headers = list(original.headers) + info.to_headers() + list(extra_headers or [])
    value = original.value if body is None else body
    return Message(
        dlq_topic(original.topic), original.partition, next(_offsets), original.key, value,
        headers, int(datetime.now(UTC).timestamp() * 1000),
    ), info


@pytest.fixture
def dead_letter_factory():
    return dead_letter_of
