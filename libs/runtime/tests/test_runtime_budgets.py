"""Budgets against the real Redis: atomic reserve, idempotent reserve and settle, periods."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from modelbus_runtime.budgets import BudgetExceeded, BudgetLimit, Budgets, period_ttl_s


@pytest.fixture
async def redis(redis_url):
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _scope() -> str:
    return f"team:test/{uuid.uuid4().hex[:10]}"


async def test_concurrent_reservations_never_exceed_the_limit(redis):
    budgets = Budgets(redis)
    limit = BudgetLimit(_scope(), "day", 1.0)
    results = await asyncio.gather(
        *(budgets.reserve(f"h-{uuid.uuid4().hex}", [limit], 0.03) for _ in range(100)),
        return_exceptions=True,
    )
    held = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(held) == 33 and len(refused) == 67
    assert await budgets.committed_usd(limit) == pytest.approx(0.99)


async def test_reserve_is_idempotent_by_hold_id_and_settle_replaces_the_reservation(redis):
    budgets = Budgets(redis)
    team, tenant = BudgetLimit(_scope(), "day", 1.0), BudgetLimit(_scope(), "month", 5.0)
    hold = await budgets.reserve("same-hold-" + uuid.uuid4().hex, [team, tenant], 0.4)
    again = await budgets.reserve(hold.hold_id, [team, tenant], 0.4)
    assert again.reserved_usd == hold.reserved_usd == pytest.approx(0.4)
    assert await budgets.committed_usd(team) == pytest.approx(0.4)

    assert await budgets.settle(hold, 0.1) is True
    assert await budgets.settle(hold, 0.1) is False, "a repeated settle changes nothing"
    assert await budgets.committed_usd(team) == pytest.approx(0.1)
    assert await budgets.committed_usd(tenant) == pytest.approx(0.1)


async def test_the_scope_that_would_overflow_is_named_and_nothing_is_reserved(redis):
    budgets = Budgets(redis)
    roomy, tight = BudgetLimit(_scope(), "day", 10.0), BudgetLimit(_scope(), "hour", 0.5)
    await budgets.reserve("h-" + uuid.uuid4().hex, [roomy, tight], 0.4)
    with pytest.raises(BudgetExceeded) as exc:
        await budgets.reserve("h-" + uuid.uuid4().hex, [roomy, tight], 0.2)
    assert exc.value.limit == tight and tight.scope in str(exc.value)
    assert exc.value.committed_usd == pytest.approx(0.4)
    assert await budgets.committed_usd(roomy) == pytest.approx(0.4), "all or nothing"


async def test_periods_are_separate_counters(redis):
    budgets = Budgets(redis)
    limit = BudgetLimit(_scope(), "day", 1.0)
    monday = datetime(2030, 1, 7, 23, 0, tzinfo=UTC)
    tuesday = datetime(2030, 1, 8, 1, 0, tzinfo=UTC)
    await budgets.reserve("h-" + uuid.uuid4().hex, [limit], 0.9, now=monday)
    await budgets.reserve("h-" + uuid.uuid4().hex, [limit], 0.9, now=tuesday)
    assert await budgets.committed_usd(limit, monday) == pytest.approx(0.9)
    assert await budgets.committed_usd(limit, tuesday) == pytest.approx(0.9)


def test_counters_outlive_their_period_by_a_day():
    now = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)
    assert period_ttl_s("day", now) == 12 * 3600 + 86400
    assert period_ttl_s("month", now) == 12 * 3600 + 86400
    assert period_ttl_s("hour", now) == 3600 + 86400
