"""Live shadow routing through the real stack (broker, Redis, simulator, worker, aggregator).

The same requests are served by a router without a shadow policy, then by the router
restarted with ``MODELBUS_SHADOW_POLICY_PATH``: the responses are identical but for their
ids and timestamps (nothing served changes), every request gets one shadow decision signed
by the router, those decisions equal an offline replay of the same requests under the
shadow policy, and ``modelbus shadow report`` counts them.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import pytest
from modelbus_cli.commands_replay import shadow_summary
from modelbus_router.policy import content_version, parse_policy
from modelbus_router.replay import Recorded, replay
from modelbus_runtime.signing import KeyRing
from modelbus_schemas import RequestEvent
from modelbus_schemas.topics import DECISIONS_SHADOW

from tests.conftest import start_routed_stack
from tests.replay.test_replay_policy import V1, V2, send_all, traffic
from tests.upstream import Upstream

pytestmark = pytest.mark.e2e

VOLATILE = {"event_id", "request_id", "created_at", "latency_ms", "started_at", "decided_at",
            "received_at", "finished_at", "ttft_ms"}


def stable(value):
    """A response without what differs between two servings of the same request."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


@pytest.fixture
def shadow_stack(tmp_path, kafka_bootstrap, redis_url):
    (tmp_path / "shadow.yaml").write_text(V2)
    stack = start_routed_stack(tmp_path, kafka_bootstrap, redis_url, V1, {"openai": {}})
    yield stack
    stack.stop()


async def replayed(bodies: list[dict]) -> dict[str, dict]:
    """The offline replay of ``bodies`` under the shadow policy, one comparison per request."""
    async def batches():
        yield [Recorded(RequestEvent.model_validate(b)) for b in bodies]

    details = io.StringIO()
    await replay(batches(), parse_policy(V2), details=details)
    rows = [json.loads(line) for line in details.getvalue().splitlines()]
    return {r["request_id"]: r for r in rows}


async def test_shadow_policy_changes_nothing_served_and_matches_offline_replay(shadow_stack,
                                                                              tmp_path):
    stack = shadow_stack
    run = uuid.uuid4().hex[:8]
    tenant = f"shadow-{run}"
    without = await send_all(stack.bootstrap, traffic(tenant, f"-a-{run}"))

    module, extra = stack.specs["router"]
    stack.specs["router"] = (module, {**extra,
                                      "MODELBUS_SHADOW_POLICY_PATH": str(tmp_path / "shadow.yaml")})
    stack.restart("router", kill=False)
    bodies = traffic(tenant, f"-b-{run}")
    async with Upstream(stack.bootstrap) as up:
        shadows = await up.tail(DECISIONS_SHADOW)
        with_shadow = await send_all(stack.bootstrap, bodies)
        records = await shadows.collect(lambda r: r.key.decode().endswith(f"-b-{run}"), len(bodies),
                                        timeout=30)
        await asyncio.sleep(1)  # nothing more arrives: one decision per request
        records += await shadows.collect(lambda r: r.key.decode().endswith(f"-b-{run}"), 1, timeout=1)
        await shadows.stop()

    assert len(without) == len(with_shadow) == len(bodies) == 10
    for rid, response in without.items():
        assert stable(with_shadow[rid.replace("-a-", "-b-")]) == stable(response), rid

    events = {json.loads(r.value)["request_id"]: json.loads(r.value) for r in records}
    assert len(records) == len(events) == len(bodies), "exactly one shadow decision each"
    offline = await replayed(bodies)
    for rid, event in events.items():
        assert event["active"]["policy_version"] == content_version(V1)
        assert event["shadow"]["policy_version"] == content_version(V2)
        replay_row = offline[rid]
        shadow = event["shadow"]
        selected = [f"{m['provider']}/{m['model']}"
                    for m in (shadow.get("decision") or {}).get("selected", [])]
        assert selected == replay_row["now_models"], rid
        assert shadow["outcome"] == replay_row["now_outcome"], rid
        assert shadow.get("error_code") == replay_row["now_error_code"], rid
        rejected = [[f"{r['provider']}/{r['model']}", r["reason"]]
                    for r in (shadow.get("decision") or {}).get("rejected", [])]
        assert rejected == replay_row["rejected"], rid
        active_model = with_shadow[rid]["models"][0]
        assert event["active"]["decision"]["selected"][0]["model"] in active_model
    assert sum(e["agree"] for e in events.values()) == 2  # chat from region us

    ring = KeyRing.parse(stack.signing_keys())
    summary, rejected = await shadow_summary(stack.bootstrap, ring)
    mine = [e for e in events.values() if e["tenant"] == tenant]
    assert rejected == 0
    assert summary.total >= len(mine)  # the topic may hold other tests' decisions too
    assert summary.outcomes["served->refused"] >= 3
    forged, bad = await shadow_summary(stack.bootstrap, KeyRing.parse(KeyRing.generate()))
    assert forged.total == 0 and bad == summary.total
