"""The router's metric labels are bounded: the ``route`` label of
``modelbus_router_decisions_total`` takes the policy's route names only, whatever task names
callers send. Real Redis (the engine's idempotency claims)."""

from __future__ import annotations

import random
import string
import uuid

from modelbus_router.engine import UNKNOWN_ROUTE, RouterEngine
from modelbus_router.errors import RoutingError
from modelbus_router.reload import PolicySource
from modelbus_schemas import ErrorCode, RequestEvent
from prometheus_client import REGISTRY

POLICY = """
catalog:
  a: {provider: openai, model: gpt-4o-mini}
routes:
  summarize: {targets: [{model: a}]}
"""


def decision_series() -> set[tuple]:
    return {tuple(sorted(s.labels.items()))
            for metric in REGISTRY.collect() if metric.name == "modelbus_router_decisions"
            for s in metric.samples if s.name == "modelbus_router_decisions_total"}


def random_task(rng: random.Random) -> str:
    return rng.choice(string.ascii_lowercase) + "".join(
        rng.choices(string.ascii_lowercase + string.digits + "-._", k=rng.randint(3, 40)))


async def test_a_thousand_unknown_task_names_add_at_most_a_fixed_number_of_series(
        tmp_path, redis_client):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    engine = RouterEngine(PolicySource(path), redis_client)
    rng, run = random.Random(22), uuid.uuid4().hex[:8]
    before = decision_series()
    for i in range(1000):
        request = RequestEvent(request_id=f"card-{run}-{i}", task=random_task(rng),
                               caller={"tenant": "acme"},
                               messages=[{"role": "user", "content": "hi"}])
        outcome = await engine.route(request)
        assert outcome.response is not None and outcome.response.error.code == "unknown_task"
        engine.refusal(request, RoutingError(ErrorCode.FORBIDDEN, "reply topic not allowed"))
    added = decision_series() - before
    assert len(added) <= 2, sorted(added)[:5]  # (unknown, unknown_task), (unknown, forbidden)
    assert {dict(s)["route"] for s in added} <= {UNKNOWN_ROUTE}

