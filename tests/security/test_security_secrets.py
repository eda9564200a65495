"""Secrets planted in every free-text field, and in a payload that breaks the schema, are
found nowhere afterwards: not in the audit store (SQLite and PostgreSQL), not in the DLQ
records, not in any service's log."""

from __future__ import annotations

import asyncio
import json

import sqlalchemy as sa
from modelbus_schemas.topics import REQUESTS, RESPONSES, dlq_topic
from sqlalchemy.ext.asyncio import create_async_engine

from tests.security.conftest import body, run_id
from tests.upstream import Upstream, request_json

AWS = "AKIAQX7PLANTED3KEY9Z"
PEM_BODY = "MIIEpAIBAAKCAQEAplantedprivatekeymaterial"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
JWT = ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkLXVzZXIifQ."
       "c2lnbmF0dXJlLW9mLXRoZS1wbGFudGVkLXRva2Vu")
PLANTED = (AWS, PEM_BODY, JWT)


def planted_requests(run: str) -> dict[str, dict | bytes]:
    base = {"caller": {"tenant": "acme", "team": "support", "user": "u1"}}
    return {
        f"sec-msg-{run}": request_json(f"sec-msg-{run}", text=f"my key is {AWS} and\n{PEM}"),
        f"sec-meta-{run}": {**request_json(f"sec-meta-{run}"), "metadata": {"note": JWT}},
        f"sec-user-{run}": {**request_json(f"sec-user-{run}"),
                            "caller": {**base["caller"], "user": JWT}},
        f"sec-bad-{run}": json.dumps({"request_id": f"sec-bad-{run}", "task": 7,
                                      "notes": [AWS, PEM, JWT]}).encode(),
    }


async def _store_text(url: str) -> str:
    """Every row of every audit table, as text."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            rows = []
            for table in tables:
                result = await conn.execute(sa.text(f'SELECT * FROM "{table}"'))
                rows += [repr(tuple(r)) for r in result]
            return "\n".join(rows)
    finally:
        await engine.dispose()


async def test_planted_secrets_are_nowhere(stack):
    run = run_id()
    sent = planted_requests(run)
    async with Upstream(stack.bootstrap) as upstream:
        responses = await upstream.tail(RESPONSES)
        dead = await upstream.tail(dlq_topic(REQUESTS))
        for rid, request in sent.items():
            await upstream.send(request, key=rid)
        answers = await responses.collect(lambda r: r.key.decode().startswith("sec-") and
                                          r.key.decode().endswith(run), 3, timeout=30)
        dead_letters = await dead.collect(lambda r: r.key.decode() == f"sec-bad-{run}", 1,
                                          timeout=30)
        await responses.stop()
        await dead.stop()
    assert {body(a)["error"]["code"] for a in answers} == {"guardrail_denied"}, \
        [body(a) for a in answers]
    assert len(dead_letters) == 1
    dlq_text = repr((dead_letters[0].value, dead_letters[0].headers))
    assert "secrets_masked" in dlq_text

    stored = ""
    for _ in range(60):  # until the audit has every request, its answer and the dead letter
        stored = await _store_text(stack.database_url)
        if all(rid in stored for rid in sent) and stored.count("response") >= 3:
            break
        await asyncio.sleep(0.5)
    assert all(rid in stored for rid in sent), "the audit recorded every planted request"
    assert "aws_access_key" in stored and "jwt" in stored, "what was masked is recorded"
    logs = "\n".join(p.read_text(errors="replace")
                     for p in (stack.workdir / "logs").glob("*.log"))
    for secret in PLANTED:
        assert secret not in stored, f"{secret[:8]}… in the audit store"
        assert secret not in dlq_text, f"{secret[:8]}… in the DLQ record"
        assert secret not in logs, f"{secret[:8]}… in a log"
