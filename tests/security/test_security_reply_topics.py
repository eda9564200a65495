"""Reply topics are an allow-list in policy: internal topics, the broker's own and names the
broker would auto-create are refused with an error on the default topic, never written to."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from modelbus_schemas.topics import RESPONSES, RESULTS, tasks_topic

from tests.security.conftest import body, run_id
from tests.upstream import Upstream, request_json


@pytest.mark.parametrize("target", [tasks_topic("openai"), RESULTS, "__consumer_offsets",
                                    "sneaky.sink.{run}"])
async def test_a_reply_topic_outside_the_policy_is_refused(sqlite_stack, target):
    run = run_id()
    target = target.format(run=run)
    rid = f"reply-{run}"
    async with Upstream(sqlite_stack.bootstrap) as upstream:
        responses = await upstream.tail(RESPONSES)
        watched = None if target.startswith(("sneaky", "__")) else (
            await upstream.tail(target))
        await upstream.send(request_json(rid, reply_to=target))
        got = await responses.collect(lambda r: r.key.decode() == rid, 1, timeout=15)
        leaked = await watched.collect(lambda r: r.key.decode() == rid, 1, timeout=2) if (
            watched) else []
        await responses.stop()
        if watched:
            await watched.stop()
    assert len(got) == 1, "an error response on the default topic"
    answer = body(got[0])
    assert answer["status"] == "error" and answer["error"]["code"] == "forbidden", answer
    assert target in answer["error"]["message"]
    assert leaked == [], f"nothing was written to {target}"
    admin = AIOKafkaAdminClient(bootstrap_servers=sqlite_stack.bootstrap)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    if target.startswith("sneaky"):
        assert target not in topics, "the broker was never asked to auto-create it"
