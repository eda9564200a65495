"""What the router leaves for the aggregator's output guards, in Redis under the request's
scoped id (:func:`~modelbus_schemas.identity.scoped_id` of tenant and request id: two
tenants may use one request id, and a placeholder map must never reach another's answer).

Why Redis and not the events: the contract has no field for output-guard settings or for a
placeholder map, and the map must never travel on an event in clear (the audit consumer
stores every ``modelbus.*`` topic). Redis is where the request's fan-in state already lives,
both services reach it, and a TTL bounds how long a placeholder's value exists at all.
Encrypting the map onto the task with a shared key was the alternative; it needs a contract
field and key rotation, and still puts ciphertext of personal data into the audit store.

The record (hash ``modelbus:guard:{<scoped id>}``, TTL ``RECORD_TTL_S``):

* ``spec`` — JSON ``{"v": 1, "output": <OutputGuards>, "findings": [<input findings>]}``;
* ``restore`` — JSON ``{placeholder: value}``, only when the route allows restoring;
* ``task`` — the first task (already redacted), only when a bad JSON output may be repaired;
* ``failed:<step>`` — written by the aggregator: cost of an output it sent back for repair.

The aggregator's reader is :mod:`modelbus_aggregator.output_guards`; the two must agree on
this layout (it belongs in the shared runtime; see the module's note).

Also here: a cascade route with a JSON-schema output guard escalates through its tiers, so
tiers without a check of their own get the schema as their check.
"""

from __future__ import annotations

import dataclasses

import orjson
from modelbus_runtime.errors import TransientInfraError
from modelbus_schemas import CheckSpec, GuardrailFinding, TaskEvent
from redis.exceptions import RedisError

from modelbus_router.guardrails.spec import OutputGuards

KEY_PREFIX = "modelbus:guard:"
RECORD_TTL_S = 86_400
REPAIRABLE_MODES = ("single", "fallback")


def record_key(scope: str) -> str:
    """The guard record of the request ``scope`` (its scoped id)."""
    return f"{KEY_PREFIX}{{{scope}}}"


def with_output_checks(routed, output: OutputGuards):
    """``routed`` (a :class:`~modelbus_router.planner.RoutedPlan`) whose cascade tiers check
    the output schema where they had no check (not the last tier: it always answers)."""
    guard = output.json_schema
    if guard is None or guard.mode != "validate" or not routed.tasks:
        return routed
    plan = routed.tasks[0].plan
    if plan.mode != "cascade" or not plan.cascade:
        return routed
    check = CheckSpec(kind="json_schema", json_schema=guard.json_schema)
    last = len(plan.cascade) - 1
    tiers = [t if t.check is not None or i == last else t.model_copy(update={"check": check})
             for i, t in enumerate(plan.cascade)]
    new_plan = plan.model_copy(update={"cascade": tiers})
    tasks = [t.model_copy(update={"plan": new_plan}) for t in routed.tasks]
    return dataclasses.replace(routed, tasks=tasks)


def needs_record(output: OutputGuards, findings: list[GuardrailFinding],
                 restore_map: dict[str, str]) -> bool:
    """Whether the aggregator has anything to do for the request (see ``build_record``)."""
    return bool(output.active() or findings or restore_map)


def build_record(output: OutputGuards, findings: list[GuardrailFinding],
                 restore_map: dict[str, str], first_task: TaskEvent | None) -> dict[str, bytes]:
    """The hash fields to store, or ``{}`` when the aggregator has nothing to do."""
    if not needs_record(output, findings, restore_map):
        return {}
    fields = {"spec": orjson.dumps({
        "v": 1,
        "output": output.model_dump(mode="json", exclude_none=True),
        "findings": [f.model_dump(mode="json") for f in findings],
    })}
    if restore_map:
        fields["restore"] = orjson.dumps(restore_map)
    guard = output.json_schema
    if (guard is not None and guard.mode == "validate" and guard.repairs and first_task
            and first_task.plan.mode in REPAIRABLE_MODES):
        fields["task"] = first_task.model_dump_json().encode()
    return fields


class GuardRecords:
    def __init__(self, redis, ttl_s: int = RECORD_TTL_S) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    async def save(self, scope: str, fields: dict[str, bytes]) -> None:
        """Idempotent: a redelivered request writes the same fields again."""
        if not fields:
            return
        key = record_key(scope)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=fields)
                pipe.expire(key, self.ttl_s)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise TransientInfraError(f"redis unavailable for guard records: {exc}") from exc
