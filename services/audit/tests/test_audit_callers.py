"""Every row carries its request's caller (SQLite and PostgreSQL): team, user and data class
filters find results, responses and dead letters, whichever arrives first; the usage rollup
agrees with the raw results and counts a redelivered batch once."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest
from modelbus_audit import cli
from modelbus_audit.queries import Filters
from modelbus_schemas import RequestEvent, TaskEvent, decode, encode


def _of_team(flow, team: str):
    """``flow`` with the caller of its request and tasks moved to ``team``."""
    def retag(message, model):
        event = decode(model, message.value)
        caller = event.caller.model_copy(update={"team": team})
        return replace(message, value=encode(event.model_copy(update={"caller": caller})))

    flow.request = retag(flow.request, RequestEvent)
    flow.tasks = [retag(m, TaskEvent) for m in flow.tasks]
    flow.messages = [flow.request, *flow.tasks, *flow.results, flow.response]
    return flow


async def test_a_team_filter_finds_its_results_responses_and_dead_letters(
        store, store_url, new_flow, dead_letter_factory, tmp_path):
    ours = new_flow(f"t-{uuid.uuid4().hex[:6]}")
    theirs = _of_team(new_flow(f"z-{uuid.uuid4().hex[:6]}"), "zeta")
    dead, _ = dead_letter_factory(ours.results[1])
    await store.write([m.record() for m in [*ours.messages, *theirs.messages, dead]])

    failed = await store.search(Filters(team="support", status="error"))
    assert [(e.request_id, e.kind, e.model) for e in failed] == [
        (ours.request_id, "result", "claude-haiku"), (ours.request_id, "dead_letter", "claude-haiku")]
    text = await cli.search(Filters(team="support", status="error", kind="result"),
                            url=store_url)
    assert "claude-haiku" in text and "1 events" in text and "support" in text
    kinds = sorted(e.kind for e in await store.search(Filters(team="support")))
    assert kinds == ["dead_letter", "request", "response", "result", "result", "task", "task"]
    zeta = await store.search(Filters(team="zeta", kind="result"))
    assert {e.request_id for e in zeta} == {theirs.request_id}
    assert {e.req_user for e in await store.search(Filters(user="ana", kind="response"))} == {
        "ana"}

    path = tmp_path / "support.jsonl"
    rows = await cli.export(Filters(team="support", kind="result"), "jsonl", path, store_url)
    exported = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == 2 and {r["request_id"] for r in exported} == {ours.request_id}
    assert sum(r["cost_usd"] or 0 for r in exported) == pytest.approx(0.00012)
    assert {r["status"] for r in exported} == {"ok", "error"}
    assert {(r["req_team"], r["req_user"]) for r in exported} == {("support", "ana")}


async def test_rows_stored_before_their_request_learn_its_caller(store, flow):
    early = [*flow.results, flow.response]
    await store.write([m.record() for m in early])
    assert await store.search(Filters(team="support")) == []
    before = await store.usage_report(Filters())
    assert [(r["team"], r["results"]) for r in before] == [(None, 1), (None, 1)]

    await store.write([m.record() for m in [flow.request, *flow.tasks]])
    assert len(await store.search(Filters(team="support"))) == 6
    after = await store.usage_report(Filters())
    assert {(r["team"], r["model"], r["requests"], r["results"]) for r in after} == {
        ("support", "claude-haiku", 1, 1), ("support", "gpt-4o-mini", 1, 1)}
    assert after == await store.usage_report(Filters(user="ana"))  # the raw results agree


async def test_the_rollup_counts_a_redelivered_batch_once(store, new_flow):
    flows = [new_flow(f"d-{i}-{uuid.uuid4().hex[:4]}") for i in range(3)]
    for flow in flows:
        await store.write(flow.records())
        await store.write(flow.records())  # redelivered
    rollup = await store.usage_report(Filters(tenant="acme"))
    openai = [r for r in rollup if r["model"] == "gpt-4o-mini"]
    assert [(r["requests"], r["results"], r["input_tokens"]) for r in openai] == [(3, 3, 36)]
    assert openai[0]["cost_usd"] == pytest.approx(0.00036)
    assert rollup == await store.usage_report(Filters(tenant="acme", user="ana"))
