"""After a response is published: settle the request's budget hold, fill the cache and
count it in the metrics.

Both are idempotent (settling by hold id, the cache by key), so a redelivered or taken-over
response settles and caches the same thing again harmlessly. The budget and cache
implementations live in the shared runtime (``modelbus_runtime.budgets.Budgets``,
``modelbus_runtime.response_cache.ResponseCache``); this module only decides what to call.
"""

from __future__ import annotations

from typing import Any, Protocol

from modelbus_schemas import BudgetHold, ResponseEvent

from modelbus_aggregator.metrics import observe_response
from modelbus_aggregator.state import Decision


class BudgetSettler(Protocol):
    async def settle(self, hold: BudgetHold, actual_usd: float) -> Any: ...


class ResponseCachePut(Protocol):
    async def put(self, cache_key: str, response: ResponseEvent,
                  ttl_s: int | None = None) -> Any: ...


class Settlement:
    def __init__(self, budgets: BudgetSettler | None, cache: ResponseCachePut | None,
                 cache_ttl_s: int | None = None) -> None:
        """``cache_ttl_s`` None: the TTL the router put inside the cache key."""
        self.budgets = budgets
        self.cache = cache
        self.cache_ttl_s = cache_ttl_s

    async def __call__(self, decision: Decision) -> None:
        response = decision.response
        observe_response(response)
        if self.budgets is not None and decision.budget_hold is not None:
            await self.budgets.settle(decision.budget_hold, response.cost_usd)
        if (self.cache is not None and decision.cache_key and response.status == "ok"
                and not response.cache_hit):
            await self.cache.put(decision.cache_key, response, self.cache_ttl_s)
