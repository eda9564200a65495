"""Deadlines and settled requests through the broker: router → worker → simulator over
HTTP → aggregator, with a policy whose routes set a short default deadline.

* A hanging provider, called with no caller deadline, ends ``deadline_exceeded`` at the
  route's default (not after three 30-s attempt timeouts, ``retries_exhausted``).
* An ensemble settled by its quorum stops the dropped part: the simulator's call count for
  that part's model stops growing once the response is sent, well short of its retries.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from modelbus_testing.simulator import provider_calls, simulate

from tests.conftest import start_routed_stack
from tests.upstream import RESPONSES, Upstream, request_json

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:6]  # model names of this run: no circuit state from an earlier one
HANG, OK, FLAKY = f"dl-hang-{RUN}", f"dl-ok-{RUN}", f"dl-flaky-{RUN}"
DEADLINE_MS = 3000
FLAKY_ATTEMPTS = 8
POLICY = f"""
catalog:
  hang: {{provider: openai, model: {HANG}}}
  ok: {{provider: openai, model: {OK}}}
  flaky: {{provider: openai, model: {FLAKY}}}
routes:
  hang:
    strategy: single
    targets: [{{model: hang}}]
    deadline_ms: {DEADLINE_MS}
  vote:
    strategy: ensemble
    ensemble: {{strategy: first_success}}
    targets:
      - {{model: ok}}
      - {{model: flaky, retry: {{max_attempts: {FLAKY_ATTEMPTS}, base_delay_ms: 1500,
                                max_delay_ms: 1500}}}}
"""


@pytest.fixture(scope="module")
def dl_stack(tmp_path_factory, kafka_bootstrap, redis_url):
    workdir = tmp_path_factory.mktemp(f"deadlines-{uuid.uuid4().hex[:6]}")
    # a breaker that never opens here: only the settled mark may stop the dropped part
    stack = start_routed_stack(workdir, kafka_bootstrap, redis_url, POLICY,
                               {"openai": {"MODELBUS_BREAKER_FAILURE_THRESHOLD": "1000"}})
    yield stack
    stack.stop()


async def _ask(stack, body: dict, timeout: float) -> tuple[dict | None, float]:
    """Send one request; return its response (None if none came in time) and the seconds
    it took."""
    async with Upstream(stack.bootstrap) as up:
        responses = await up.tail(RESPONSES)
        started = time.monotonic()
        await up.send(body)
        got = await responses.collect(lambda r: r.key.decode() == body["request_id"], 1,
                                      timeout=timeout)
        elapsed = time.monotonic() - started
        await responses.stop()
    return (json.loads(got[0].value) if got else None), elapsed


async def test_a_hanging_provider_without_a_caller_deadline_ends_at_the_route_default(
        dl_stack):
    simulate(dl_stack, HANG, failure_rate=1.0, failure={"kind": "hang"})
    before = provider_calls(dl_stack, HANG)
    body = request_json(f"dl-hang-{uuid.uuid4().hex[:8]}", task="hang")
    assert "latency_budget_ms" not in body
    response, elapsed = await _ask(dl_stack, body, timeout=DEADLINE_MS / 1000 + 15)
    assert response is not None, (
        f"no response within {DEADLINE_MS / 1000 + 15:.0f} s: the request had no deadline")
    print(f"hanging provider answered after {elapsed:.1f} s")
    assert response["status"] == "error", response
    assert response["error"]["code"] == "deadline_exceeded", response["error"]
    assert DEADLINE_MS / 1000 - 0.5 <= elapsed <= DEADLINE_MS / 1000 + 6, elapsed
    assert provider_calls(dl_stack, HANG) - before == 1, "one attempt, cut by the deadline"


async def test_an_ensemble_settled_by_its_quorum_stops_calling_the_dropped_part(dl_stack):
    simulate(dl_stack, OK, latency_ms=300, reply="the answer")
    simulate(dl_stack, FLAKY, failure_rate=1.0, failure={"kind": "status", "status": 503})
    before = provider_calls(dl_stack, FLAKY)
    body = request_json(f"dl-vote-{uuid.uuid4().hex[:8]}", task="vote")
    response, _ = await _ask(dl_stack, body, timeout=30)
    assert response is not None and response["status"] == "ok", response
    assert response["output"] == "the answer"
    at_response = provider_calls(dl_stack, FLAKY) - before
    assert at_response >= 1, "the dropped part was running when the quorum was reached"
    # the flaky part would go on for up to 8 attempts, 0-1.5 s apart (~5 s on average)
    await asyncio.sleep(12)
    final = provider_calls(dl_stack, FLAKY) - before
    print(f"dropped part: {at_response} call(s) when the response was sent, {final} in all "
          f"(retry policy: up to {FLAKY_ATTEMPTS})")
    assert final <= at_response + 1, (
        f"the dropped part kept calling: {at_response} → {final}")
    assert final < FLAKY_ATTEMPTS
