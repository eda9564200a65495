"""Lineage tree, its text and JSON renderings, the CLI functions, and database URL resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelbus_audit import cli
from modelbus_audit.db import async_url, database_url_from_env
from modelbus_audit.lineage import build_lineage
from modelbus_audit.render import render_text
from modelbus_schemas import DlqReason
from sqlalchemy import text


async def _flow_with_dead_letter(store, flow, dead_letter_factory):
    dead, _ = dead_letter_factory(
        flow.tasks[1], body=b"\x07garbage\nbytes", reason=DlqReason.PROVIDER_TERMINAL,
        error="400 bad \x1b[2Jrequest",
    )
    await store.write(flow.records() + [dead.record()])


async def test_lineage_tree_has_decision_parts_attempts_and_dead_letters(
    store, flow, dead_letter_factory
):
    await _flow_with_dead_letter(store, flow, dead_letter_factory)
    tree = build_lineage(flow.request_id, await store.lineage(flow.request_id))
    assert tree.request.kind == "request"
    assert tree.decision["policy_version"] == "v7"
    assert tree.decision["rejected"][0]["provider"] == "gemini"
    assert [(p.part_id, p.provider, p.model) for p in tree.parts] == [
        (0, "openai", "gpt-4o-mini"), (1, "anthropic", "claude-haiku")]
    assert [a["status_code"] for a in tree.parts[0].attempts] == [429, 200]
    assert tree.parts[1].results[0].error_code == "provider_terminal"
    assert len(tree.responses) == 1 and tree.responses[0].status == "partial"
    assert tree.dead_letters[0].dlq_reason == "provider_terminal"
    assert tree.total_cost_usd == pytest.approx(0.00012)


async def test_text_rendering_reads_as_a_timeline(store, flow, dead_letter_factory):
    await _flow_with_dead_letter(store, flow, dead_letter_factory)
    out = render_text(build_lineage(flow.request_id, await store.lineage(flow.request_id)))
    lines = out.splitlines()
    assert lines[0].startswith(f"request {flow.request_id}  2025-03-01 UTC  tenant=acme")
    assert "policy v7  route=summarize-confidential  strategy=parallel" in out
    assert "selected: openai/gpt-4o-mini, anthropic/claude-haiku" in out
    assert "rejected: gemini/gemini-pro (region not allowed)" in out
    assert "attempt 1: error http=429 40.0 ms rate_limited" in out
    assert "result   error  error=provider_terminal" in out
    assert "response  partial" in out and "models=openai/gpt-4o-mini" in out
    assert "DEAD LETTER  reason=provider_terminal" in out
    assert "body (14 bytes, not JSON): \\x07garbage\\nbytes" in out
    order = [out.index(s) for s in ("request  ", "routing", "part 0", "part 1", "response")]
    assert order == sorted(order)
    assert "error: DecodeError: 400 bad \\x1b[2Jrequest" in out  # no terminal control
    assert "\x07" not in out and "\x1b" not in out
    assert lines[-1].startswith("└─ 7 events, total cost $0.000120")


async def test_cli_show_text_and_json(store, store_url, flow, dead_letter_factory):
    await _flow_with_dead_letter(store, flow, dead_letter_factory)
    as_text = await cli.show(flow.request_id, url=store_url)
    assert "part 1  anthropic/claude-haiku" in as_text
    data = json.loads(await cli.show(flow.request_id, url=store_url, as_json=True))
    assert data["request_id"] == flow.request_id and data["events"] == 7
    assert data["parts"][0]["attempts"][1]["outcome"] == "ok"
    assert data["dead_letters"][0]["dlq_reason"] == "provider_terminal"
    assert data["request"]["tenant"] == "acme"
    assert await cli.show("missing", url=store_url) == "no audit records for request missing"


async def test_cli_verify_reports_ok_then_the_tampered_row(store, store_url, flow):
    await store.write(flow.records())
    ok, report = await cli.verify(url=store_url)
    assert ok and "OK: 6 rows in 5 chains" in report
    async with store.engine.begin() as connection:
        target = (await connection.execute(text(
            "SELECT id FROM audit_events WHERE kind = 'response'"))).scalar_one()
        await connection.execute(text(
            "UPDATE audit_events SET policy_version = 'v0' WHERE id = :id"), {"id": target})
    ok, report = await cli.verify(url=store_url)
    assert not ok
    assert f"row id={target} event_id=response:4:acme:{flow.request_id}:response seq=1" in report


def test_database_url_from_env_rewrites_to_async_drivers(tmp_path: Path):
    assert database_url_from_env({"DATABASE_URL": "postgres://u:p@db:5432/audit"}) == (
        "postgresql+asyncpg://u:p@db:5432/audit")
    assert database_url_from_env({"DATABASE_URL": "postgresql://u@db/audit"}) == (
        "postgresql+asyncpg://u@db/audit")
    assert async_url("postgresql+asyncpg://u@db/a") == "postgresql+asyncpg://u@db/a"
    assert async_url("postgresql+psycopg://u@db/a?sslmode=require") == (
        "postgresql+asyncpg://u@db/a?ssl=require")
    assert async_url(f"sqlite:///{tmp_path}/a.db") == f"sqlite+aiosqlite:///{tmp_path}/a.db"
    with pytest.raises(ValueError, match="unsupported"):
        async_url("mysql://u@db/a")


def test_database_url_defaults_to_sqlite_and_creates_the_folder(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = database_url_from_env({})
    assert url == f"sqlite+aiosqlite:///{tmp_path / '.modelbus' / 'audit.db'}"
    assert (tmp_path / ".modelbus").is_dir()
    custom = tmp_path / "deep" / "dir" / "a.db"
    assert database_url_from_env({"MODELBUS_AUDIT_SQLITE_PATH": str(custom)}) == (
        f"sqlite+aiosqlite:///{custom}")
    assert custom.parent.is_dir()
