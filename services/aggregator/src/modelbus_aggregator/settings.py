"""The aggregator's settings (environment, prefix ``MODELBUS_``)."""

from __future__ import annotations

from modelbus_runtime.settings import RuntimeSettings


class AggregatorSettings(RuntimeSettings):
    aggregator_group_id: str = "modelbus-aggregator"
    aggregator_state_prefix: str = "modelbus:agg"
    # how long a handler may take to publish a claimed response before another takes over
    aggregator_publish_lease_ms: int = 10_000
    # how often the deadline timer scans, and how long after a task's deadline_at a
    # cascade/chain/ensemble without an answer is closed anyway
    aggregator_deadline_tick_ms: int = 50
    # the longest the timer sleeps with no deadline due sooner (see deadlines.py)
    aggregator_deadline_idle_tick_ms: int = 1_000
    aggregator_deadline_grace_ms: int = 2_000
    # how many times a failed chain stage is re-dispatched from its checkpoint
    aggregator_stage_retries: int = 1
    # None: cached responses live as long as the route's TTL carried in the cache key
    aggregator_cache_ttl_s: int | None = None
    # output guardrails set by the route's policy (the router leaves them in Redis);
    # off: no Redis read per response, and no output guard, repair or placeholder restore
    aggregator_output_guards: bool = True
