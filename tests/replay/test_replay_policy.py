"""Policy replay against what the candidate then really does.

Traffic is recorded under policy v1 through the whole stack (router, simulator, worker,
aggregator, audit on SQLite). ``modelbus replay`` routes the recorded requests under v2 —
which moves ``summarize`` to a cheaper model and no longer lets ``chat`` serve region
``eu`` — without calling a provider. Then v2 is made active (the router reloads the file)
and the same requests are sent again: the report's counts, model mix and cost (in total and
by team) must equal what v2 actually did, to the 1e-9 USD the workers round costs to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections import Counter

import httpx
import pytest
from modelbus_audit.db import create_engine
from modelbus_audit.tables import audit_events as ev
from modelbus_cli.commands_policy import register as register_policy
from modelbus_cli.commands_replay import register, run_replay
from modelbus_router.policy import content_version
from sqlalchemy import func, select

from tests.upstream import RESPONSES, Upstream, request_json

pytestmark = pytest.mark.e2e

V1 = """
catalog:
  big: {provider: openai, model: gpt-4o, input_usd_per_mtok: 2.5, output_usd_per_mtok: 10.0}
  small: {provider: openai, model: gpt-4o-mini, input_usd_per_mtok: 0.15, output_usd_per_mtok: 0.6}
  regional: {provider: openai, model: gpt-4.1, input_usd_per_mtok: 2.0, output_usd_per_mtok: 8.0,
             regions: [eu, us]}
routes:
  summarize: {targets: [{model: big}]}
  chat: {targets: [{model: regional}]}
"""
V2 = (V1.replace("summarize: {targets: [{model: big}]}", "summarize: {targets: [{model: small}]}")
      .replace("regions: [eu, us]", "regions: [us]"))

TEXTS = ["Summarise the quarterly numbers for the board please",
         "Kafka is a log", "one two three four five six seven eight nine ten eleven",
         "short", "Write to bob@example.com about the invoice and the delivery date"]


def traffic(tenant: str, suffix: str) -> list[dict]:
    out = []
    for i, text in enumerate(TEXTS):
        out.append(request_json(f"sum-{i}{suffix}", task="summarize", text=text,
                                caller={"tenant": tenant, "team": "alpha", "user": "u"}))
    for i, region in enumerate(["eu", "eu", "eu", "us", "us"]):
        out.append(request_json(f"chat-{i}{suffix}", task="chat", region=region,
                                text=f"hello number {i} from {region} with some words",
                                caller={"tenant": tenant, "team": "beta", "user": "u"}))
    return out


async def send_all(bootstrap: str, bodies: list[dict]) -> dict[str, dict]:
    """Each request's response, by request id. A request is (tenant, request id): other
    tests send the same request ids for other tenants, and a response may come twice (at
    least once), so responses are matched on both and counted once."""
    ids = {(b["caller"]["tenant"], b["request_id"]) for b in bodies}
    seen: set = set()

    def ours(record) -> bool:
        body = json.loads(record.value)
        identity = (body.get("tenant"), body.get("request_id"))
        if identity not in ids or identity in seen:
            return False
        seen.add(identity)
        return True

    async with Upstream(bootstrap) as up:
        responses = await up.tail(RESPONSES)
        await asyncio.gather(*(up.send(b) for b in bodies))
        got = await responses.collect(ours, len(ids), timeout=90)
        await responses.stop()
    out = {}
    for record in got:
        body = json.loads(record.value)
        out[body["request_id"]] = body
    return out


async def wait_audited(url: str, tenant: str, requests: int) -> None:
    """Until the audit holds every request, its answer and the results of the served ones."""
    engine = create_engine(url)
    try:
        for _ in range(240):
            async with engine.connect() as conn:
                counts = dict((await conn.execute(
                    select(ev.c.kind, func.count()).where(ev.c.tenant == tenant)
                    .group_by(ev.c.kind))).all())
                results = (await conn.execute(select(func.count()).where(
                    ev.c.kind == "result", ev.c.request_id.in_(
                        select(ev.c.request_id).where(ev.c.tenant == tenant))))).scalar_one()
            if (counts.get("request") == requests and counts.get("response") == requests
                    and results == requests):
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"audit incomplete: {counts}, results {results}")
    finally:
        await engine.dispose()


def replay_args(*argv: str) -> argparse.Namespace:
    root = argparse.ArgumentParser()
    register(root.add_subparsers(dest="command"))
    return root.parse_args(["replay", *argv])


def model_of(response: dict) -> str | None:
    return response["models"][0] if response["status"] == "ok" else None


async def test_replay_under_v2_predicts_what_v2_then_does(replay_stack, tmp_path, capsys):
    stack, policy, database = replay_stack
    tenant = f"replay-{uuid.uuid4().hex[:8]}"
    v1 = await send_all(stack.bootstrap, traffic(tenant, ""))
    assert all(r["status"] == "ok" for r in v1.values()), v1
    try:
        await wait_audited(database, tenant, len(v1))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- audit log ---\n{stack.group.tail('audit')}") from None

    candidate = tmp_path / "v2.yaml"
    candidate.write_text(V2)
    html = tmp_path / "report.html"
    report = await run_replay(replay_args(
        "--policy", str(candidate), "--tenant", tenant, "--database-url", database,
        "--html", str(html), "--json"))
    capsys.readouterr()  # the printed report
    from_log = await run_replay(replay_args(
        "--policy", str(candidate), "--tenant", tenant, "--database-url", database,
        "--from-topic", "--bootstrap", stack.bootstrap, "--json"))
    capsys.readouterr()
    # the log holds the text the audit redacted; the rest of the report is the same
    assert from_log["redacted"] == 0 and report["redacted"] == 1
    for key in ("replayed", "model_changed", "served_to_refused", "cost_usd", "cost_by_team",
                "model_mix", "surface_changed"):
        assert from_log[key] == report[key], key

    policy.write_text(V2)  # v2 becomes active: the router reloads the file
    async with httpx.AsyncClient() as client:
        for _ in range(60):
            info = (await client.get(stack.health["router"] + "/policy")).json()
            if info["version"] == content_version(V2):
                break
            await asyncio.sleep(0.5)
    assert info["version"] == content_version(V2)
    show = argparse.ArgumentParser()
    register_policy(show.add_subparsers(dest="command"))
    shown = show.parse_args(["policy", "show", "--url", stack.health["router"], "--json"])
    assert await asyncio.to_thread(shown.func, shown) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["version"] == content_version(V2) and row["last_reload_error"] is None
    v2 = await send_all(stack.bootstrap, traffic(tenant, "-v2"))

    pairs = [(v1[rid], v2[f"{rid}-v2"]) for rid in v1]
    refused = [b for _, b in pairs if b["status"] == "error"]
    assert {b["error"]["code"] for b in refused} == {"no_eligible_model"}
    assert report["replayed"] == len(v1) == 10
    assert report["served_to_refused"] == len(refused) == 3
    assert report["refused_to_served"] == 0
    assert report["model_changed"] == sum(model_of(a) != model_of(b) for a, b in pairs) == 8
    assert report["refusals_now"] == {"no_eligible_model": 3}
    assert report["then_policy_versions"] == {content_version(V1): 10}
    assert report["redacted"] == 1 and report["purged"] == 0

    def cost(responses) -> float:
        return round(sum(r["cost_usd"] for r in responses), 9)

    assert round(report["cost_usd"]["then"], 9) == cost(a for a, _ in pairs) > 0
    assert round(report["cost_usd"]["now"], 9) == cost(b for _, b in pairs)
    assert round(report["cost_usd"]["delta"], 9) == round(
        cost(b for _, b in pairs) - cost(a for a, _ in pairs), 9)
    assert report["cost_usd"]["delta"] < 0
    for team, prefix in (("alpha", "sum-"), ("beta", "chat-")):
        mine = [(a, b) for a, b in pairs if a["request_id"].startswith(prefix)]
        assert round(report["cost_by_team"][team]["now"], 9) == cost(b for _, b in mine)
        assert round(report["cost_by_team"][team]["then"], 9) == cost(a for a, _ in mine)

    mix_now = Counter(model_of(b) or "(refused)" for _, b in pairs)
    assert report["model_mix"]["now"] == dict(mix_now)
    # summarize now reaches a model it never reached (same hosted surface)
    assert report["surface_changed"] == 5
    assert all(c["new_reach"] == ["openai/gpt-4o-mini"] and c["new_surfaces"] == []
               for c in report["surface_changes"])
    page = html.read_text()
    assert "<svg" in page and "Cost by team" in page and "openai/gpt-4o-mini" in page
    assert "<script" not in page
