"""Budgets by real token counts, through the broker: 50 concurrent ~3,000-token requests per
hosted provider against a $0.02 limit; what the providers report spending stays within it."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from tests.conftest import start_routed_stack
from tests.upstream import RESPONSES, Upstream, request_json

pytestmark = pytest.mark.e2e

LIMIT_USD = 0.02
PROVIDERS = {"openai": "gpt-4o", "anthropic": "claude-sonnet", "gemini": "gemini-pro"}
POLICY = f"""
catalog:
  gpt-4o: {{provider: openai, model: gpt-4o, input_usd_per_mtok: 2.50,
           output_usd_per_mtok: 10.00}}
  claude-sonnet: {{provider: anthropic, model: claude-sonnet-4-5, input_usd_per_mtok: 3.00,
                  output_usd_per_mtok: 15.00}}
  gemini-pro: {{provider: gemini, model: gemini-2.5-pro, input_usd_per_mtok: 1.25,
               output_usd_per_mtok: 10.00}}
budgets:
  - {{scope: team, period: day, limit_usd: {LIMIT_USD}}}
routes:
  spend-openai: {{targets: [{{model: gpt-4o}}]}}
  spend-anthropic: {{targets: [{{model: claude-sonnet}}]}}
  spend-gemini: {{targets: [{{model: gemini-pro}}]}}
"""


@pytest.fixture(scope="module")
def spend_stack(tmp_path_factory, kafka_bootstrap, redis_url):
    workdir = tmp_path_factory.mktemp(f"budgets-{uuid.uuid4().hex[:6]}")
    stack = start_routed_stack(workdir, kafka_bootstrap, redis_url, POLICY,
                               {provider: {} for provider in PROVIDERS})
    yield stack
    stack.stop()


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_fifty_concurrent_large_requests_never_spend_past_the_limit(spend_stack, provider):
    run = uuid.uuid4().hex[:8]
    team = f"bud-{provider}-{run}"
    ids = [f"spend-{run}-{i}" for i in range(50)]
    async with Upstream(spend_stack.bootstrap) as up:
        responses = await up.tail(RESPONSES)
        await asyncio.gather(*(
            up.send(request_json(rid, task=f"spend-{provider}", text="a " * 3000,
                                 params={"max_tokens": 1},
                                 caller={"tenant": "acme", "team": team}))
            for rid in ids))
        got = await responses.collect(lambda r: r.key.decode().startswith(f"spend-{run}-"),
                                      len(ids), timeout=90)
        await responses.stop()
    bodies = [json.loads(r.value) for r in got]
    admitted = [b for b in bodies if b["status"] == "ok"]
    refused = [b for b in bodies if b["status"] == "error"]
    spent = sum(b["cost_usd"] for b in admitted)
    print(f"\n{provider}: {len(admitted)} of {len(ids)} admitted, provider-reported spend "
          f"${spent:.6f} of the ${LIMIT_USD} limit")
    assert len(bodies) == len(ids)
    assert all(b["error"]["code"] == "budget_exceeded" for b in refused), refused[:1]
    assert admitted, "the limit admits at least one request"
    assert all(b["usage"]["input_tokens"] >= 3000 for b in admitted)
    assert spent <= LIMIT_USD, f"spent ${spent:.6f} of a ${LIMIT_USD} limit"
