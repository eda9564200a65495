"""The query API over a real store (SQLite and PostgreSQL), in process through ASGI: roles and
keys (401/403), lineage tree and timeline, search filters and pages, usage report, exports in
three formats, verify naming a tampered row, and the compliance page's login flow."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta

import httpx
import pyarrow.parquet as pq
import pytest
from modelbus_audit.api import create_api
from modelbus_audit.auth import ApiKeys, key_digest
from sqlalchemy import text

COMPLIANCE, OPS = "c-key-" + "x" * 20, "o-key-" + "y" * 20
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEYS = f"{key_digest(COMPLIANCE)}:compliance,\n{key_digest(OPS)}:ops"


@pytest.fixture
async def api(store):
    app = create_api(store, ApiKeys.parse(KEYS))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
        yield client


def _as(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def test_keys_and_roles(api, store, flow):
    await store.write(flow.records())
    url = f"/v1/requests/{flow.request_id}"
    assert (await api.get(url + "/lineage")).status_code == 401
    assert (await api.get(url + "/lineage", headers=_as("wrong"))).status_code == 401
    assert (await api.get(url + "/lineage", headers=_as(key_digest(OPS)))).status_code == 401
    assert (await api.get("/v1/verify")).status_code == 401
    denied = await api.get(url + "/text", headers=_as(OPS))
    assert denied.status_code == 403 and "ops" in denied.json()["detail"]
    allowed = await api.get(url + "/text", headers=_as(COMPLIANCE))
    assert allowed.status_code == 200
    assert allowed.json()["messages"][0]["content"] == "Summarise: Kafka is a log."
    assert allowed.json()["responses"] == ["Kafka is a distributed log."]

    ops = (await api.get(url + "/lineage", headers=_as(OPS))).json()
    assert ops["text_visible"] is False and "text" not in ops
    assert "Kafka" not in json.dumps(ops)
    comp = (await api.get(url + "/lineage", headers=_as(COMPLIANCE))).json()
    assert comp["text"]["messages"][0]["content"].startswith("Summarise")


def test_malformed_key_settings_are_rejected_without_echo():
    with pytest.raises(ValueError, match="entry #2") as caught:
        ApiKeys.parse(f"{key_digest('a')}:ops,sk-live-secret:compliance")
    assert "sk-live-secret" not in str(caught.value)
    with pytest.raises(ValueError):
        ApiKeys.parse(f"{key_digest('a')}:admin")
    assert "ops" not in repr(ApiKeys.parse(KEYS)) and len(ApiKeys.parse(KEYS)) == 2


async def test_lineage_tree_and_timeline(api, store, flow):
    await store.write(flow.records())
    body = (await api.get(f"/v1/requests/{flow.request_id}/lineage", headers=_as(OPS))).json()
    assert body["decision"]["policy_version"] == "v7"
    assert [p["provider"] for p in body["parts"]] == ["openai", "anthropic"]
    kinds = [step["kind"] for step in body["timeline"]]
    assert kinds[0] == "request" and kinds[-1] == "response"
    assert kinds.index("routing") < kinds.index("task")
    assert kinds.count("attempt") == 3 and kinds.count("result") == 2
    routing = body["timeline"][kinds.index("routing")]
    assert routing["details"]["rejected"] == [{"model": "gemini/gemini-pro",
                                               "reason": "region not allowed"}]
    assert (await api.get("/v1/requests/nope/lineage", headers=_as(OPS))).status_code == 404


async def test_search_filters_and_pages(api, store, new_flow):
    for i in range(3):
        await store.write(new_flow(f"s-{i}", start=T0 + timedelta(hours=i)).records())
    query = {"provider": "openai", "kind": "result", "limit": 2}
    first = (await api.get("/v1/events", params=query, headers=_as(OPS))).json()
    assert [e["request_id"] for e in first["items"]] == ["s-0", "s-1"]
    assert first["items"][0]["payload"].get("text") is None  # ops: no text
    nxt = (await api.get("/v1/events", params=query | {"after": first["next_after"]},
                         headers=_as(COMPLIANCE))).json()
    assert [e["request_id"] for e in nxt["items"]] == ["s-2"] and nxt["next_after"] is None
    assert nxt["items"][0]["payload"]["text"] == "Kafka is a distributed log."
    by_user = await api.get("/v1/events", params={"user": "ana", "kind": "request"},
                            headers=_as(OPS))
    assert len(by_user.json()["items"]) == 3
    window = {"since": "2025-03-01T13:00:00", "until": "2025-03-01T15:00:00+01:00",
              "team": "support", "limit": 1000}
    found = (await api.get("/v1/events", params=window, headers=_as(OPS))).json()["items"]
    assert {(e["request_id"], e["kind"]) for e in found} == {
        ("s-1", "request"), ("s-1", "task"), ("s-1", "result"), ("s-1", "response")
    }  # the results and response of a request are its team's too; s-2 is at 14:00 UTC
    assert len(found) == 6
    bad = await api.get("/v1/events", params={"tenant": "a\x00b"}, headers=_as(OPS))
    assert bad.status_code == 422
    for cursor in ("-" + "0" * 40, "1-" + "9" * 20, "-99999999999999999999-1", "1-2-3"):
        refused = await api.get("/v1/events", params={"after": cursor}, headers=_as(OPS))
        assert refused.status_code == 422, cursor


async def test_usage_report_by_day_team_and_model(api, store, new_flow):
    await store.write(new_flow("r-1").records())
    await store.write(new_flow("r-2").records())
    later = new_flow("r-3")
    later = new_flow("r-3", start=later.decision.decided_at + timedelta(days=1))
    await store.write(later.records())
    rows = (await api.get("/v1/reports/usage", headers=_as(OPS))).json()["rows"]
    openai = [r for r in rows if r["model"] == "gpt-4o-mini"]
    assert [(r["day"], r["team"], r["requests"]) for r in openai] == [
        ("2025-03-01", "support", 2), ("2025-03-02", "support", 1)]
    assert openai[0]["input_tokens"] == 24 and openai[0]["output_tokens"] == 14
    assert openai[0]["cost_usd"] == pytest.approx(0.00024)
    filtered = (await api.get("/v1/reports/usage", params={"model": "claude-haiku"},
                              headers=_as(OPS))).json()
    assert {r["model"] for r in filtered["rows"]} == {"claude-haiku"}
    assert filtered["total_cost_usd"] == 0


async def test_exports_in_three_formats(api, store, new_flow):
    for i in range(2):
        await store.write(new_flow(f"x-{i}").records())
    jsonl = await api.get("/v1/export", params={"format": "jsonl"}, headers=_as(COMPLIANCE))
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert len(lines) == 12 and jsonl.headers["content-type"] == "application/x-ndjson"
    assert lines[0]["payload"]["messages"][0]["content"].startswith("Summarise")
    as_csv = await api.get("/v1/export", params={"format": "csv", "kind": "result"},
                           headers=_as(OPS))
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(rows) == 4 and rows[0]["model"] == "gpt-4o-mini"
    assert "distributed log" not in as_csv.text  # ops: no text
    parquet = await api.get("/v1/export", params={"format": "parquet", "limit": 5},
                            headers=_as(COMPLIANCE))
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == 5 and table.schema.field("cost_usd").type == "double"
    assert str(table.schema.field("event_time").type) == "timestamp[us, tz=UTC]"
    empty = await api.get("/v1/export", params={"format": "csv", "tenant": "nobody"},
                          headers=_as(OPS))
    assert empty.text.startswith("id,event_id,kind")


async def test_verify_endpoint_names_the_tampered_row(api, store, flow):
    await store.write(flow.records())
    assert (await api.get("/v1/verify", headers=_as(OPS))).json()["ok"] is True
    row = (await store.lineage(flow.request_id))[3]
    async with store.engine.begin() as connection:
        await connection.execute(text("UPDATE audit_events SET cost_usd = 0 WHERE id = :i"),
                                 {"i": row.id})
    body = (await api.get("/v1/verify", headers=_as(OPS))).json()
    assert body["ok"] is False and body["problems"][0]["row_id"] == row.id
    assert body["problems"][0]["event_id"] == row.event_id


async def test_compliance_page_login_and_roles(api, store, flow):
    await store.write(flow.records())
    page = f"/ui/requests/{flow.request_id}"
    anonymous = await api.get(page)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/ui/login")
    wrong = await api.post("/ui/login", content=f"key=nope&next={page}",
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert wrong.status_code == 401 and "not valid" in wrong.text and "nope" not in wrong.text
    login = await api.post("/ui/login", content=f"key={COMPLIANCE}&next={page}",
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert login.status_code == 303 and login.headers["location"] == page
    assert "httponly" in login.headers["set-cookie"].lower()
    html = (await api.get(page)).text
    assert "Summarise: Kafka is a log." in html and "region not allowed" in html
    assert html.count('data-kind="attempt"') == 3
    api.cookies.clear()
    ops_html = (await api.get(page, headers=_as(OPS))).text
    assert "hidden for your role" in ops_html and "Summarise" not in ops_html
    redirect = await api.post("/ui/login", content=f"key={OPS}&next=https://evil.example/",
                              headers={"content-type": "application/x-www-form-urlencoded"})
    assert redirect.headers["location"] == "/ui/"


async def test_openapi_document_lists_every_endpoint_and_the_key_scheme(api):
    doc = (await api.get("/openapi.json")).json()
    assert set(doc["paths"]) == {
        "/v1/requests/{request_id}/lineage", "/v1/requests/{request_id}/text", "/v1/events",
        "/v1/reports/usage", "/v1/export", "/v1/verify", "/v1/verify/jobs",
        "/v1/verify/jobs/{job_id}"}
    assert doc["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


async def test_lineage_is_per_tenant_and_an_ambiguous_request_id_is_refused(
        api, store, new_flow):
    rid = "shared-id"
    await store.write(new_flow(rid, tenant="acme").records()
                      + new_flow(rid, tenant="globex").records())
    ambiguous = await api.get(f"/v1/requests/{rid}/lineage", headers=_as(COMPLIANCE))
    assert ambiguous.status_code == 409 and "acme, globex" in ambiguous.json()["detail"]
    one = await api.get(f"/v1/requests/{rid}/lineage", params={"tenant": "globex"},
                        headers=_as(OPS))
    assert one.status_code == 200
    body = one.json()
    assert body["tenant"] == "globex" and body["request"]["tenant"] == "globex"
    assert body["events"] == 6 and len(body["responses"]) == 1
    search = await api.get("/v1/events", params={"request_id": rid, "tenant": "acme"},
                           headers=_as(OPS))
    assert {e["tenant"] for e in search.json()["items"]} == {"acme"}


async def test_ops_sees_no_field_of_an_invalid_payload(api, store):
    from modelbus_audit.record import AuditRecord

    body = json.dumps({"request_id": "inv-1", "task": 7,
                       "notes": "the confidential merger plan"}).encode()
    record = AuditRecord.from_message(topic="modelbus.requests.v1", partition=0, offset=99,
                                      key=b"inv-1", value=body, headers=[], timestamp_ms=0)
    await store.write([record])
    query = {"request_id": "inv-1"}
    ops = (await api.get("/v1/events", params=query, headers=_as(OPS))).json()["items"]
    assert len(ops) == 1 and ops[0]["payload"] is None
    assert "merger" not in json.dumps(ops)
    seen = (await api.get("/v1/events", params=query, headers=_as(COMPLIANCE))).json()
    assert "merger" in json.dumps(seen)


async def test_an_export_sends_its_first_bytes_before_it_has_read_every_page(
        store, new_flow, monkeypatch):
    from modelbus_audit import export

    monkeypatch.setattr(export, "PAGE", 20)  # small pages and row groups for a small store
    monkeypatch.setattr(export, "ROW_GROUP_ROWS", 40)
    for i in range(30):
        await store.write(new_flow(f"e-{i}").records())
    pages_read, search = [0], store.search

    async def counting_search(*args, **kwargs):
        pages_read[0] += 1
        return await search(*args, **kwargs)

    monkeypatch.setattr(store, "search", counting_search)
    chunks: list[tuple[int, bytes]] = []

    async def send(message) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            chunks.append((pages_read[0], message["body"]))

    await create_api(store, ApiKeys.parse(KEYS))(_get("/v1/export", b"format=parquet"),
                                                _receive_nothing(), send)
    assert chunks[0][0] < pages_read[0] // 2  # sent while most pages were still unread
    table = pq.ParquetFile(io.BytesIO(b"".join(body for _, body in chunks)))
    assert table.metadata.num_rows == 180 and table.metadata.num_row_groups >= 4


def _get(path: str, query: bytes) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
            "root_path": "", "headers": [(b"x-api-key", COMPLIANCE.encode())],
            "client": ("test", 1), "server": ("audit", 80)}


def _receive_nothing():
    sent = []

    async def receive() -> dict:
        if not sent:
            sent.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        return {}

    return receive


async def test_verification_runs_as_a_job_with_progress(api, store, new_flow):
    for i in range(3):
        await store.write(new_flow(f"j-{i}").records())
    started = await api.post("/v1/verify/jobs", params={"full": "true"}, headers=_as(OPS))
    assert started.status_code == 202 and started.json()["state"] == "running"
    job_url = f"/v1/verify/jobs/{started.json()['id']}"
    for _ in range(200):
        job = (await api.get(job_url, headers=_as(OPS))).json()
        if job["state"] != "running":
            break
        await asyncio.sleep(0.05)
    assert job["state"] == "done" and job["result"]["ok"] is True
    assert job["rows_checked"] == job["result"]["rows_checked"] == 18
    assert job["chains_done"] == job["chains_total"] == 5
    assert (await api.get("/v1/verify/jobs/nope", headers=_as(OPS))).status_code == 404
    assert (await api.post("/v1/verify/jobs")).status_code == 401
