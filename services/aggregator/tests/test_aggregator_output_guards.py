"""Output guardrails in the engine over the machine's Redis with an in-memory outbox. The
guard record is written with the router's own writer, so the two services' layouts agree."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from modelbus_aggregator.engine import Aggregator
from modelbus_aggregator.output_guards import OutputGuardian
from modelbus_aggregator.state import FanInStore
from modelbus_router.guardrails.handoff import GuardRecords, build_record
from modelbus_router.guardrails.spec import OutputGuards
from modelbus_schemas import CascadeTier, CheckSpec, ExecutionPlan, GuardrailFinding, Target
from modelbus_schemas.identity import scoped_id

from services.aggregator.tests.aggregator_factories import T0, make_result, make_task
from services.aggregator.tests.aggregator_factories import RecordingOutbox as Outbox

SCHEMA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}



async def _setup(redis_client, prefix, output: dict, findings=(), restore=None, task=True,
                 after_response=None):
    rid = f"og-{uuid.uuid4().hex[:8]}"
    guards = OutputGuards.model_validate(output)
    first = make_task(rid) if task else None
    await GuardRecords(redis_client, ttl_s=600).save(  # under the request's scoped id
        scoped_id("default", rid), build_record(guards, list(findings), restore or {}, first))
    outbox = Outbox()
    agg = Aggregator(FanInStore(redis_client, prefix, 10_000), outbox,
                     guards=OutputGuardian(redis_client), after_response=after_response,
                     clock=lambda: T0 + timedelta(seconds=1))
    return rid, agg, outbox


async def test_invalid_json_is_sent_back_once_then_the_repair_answers(redis_client, prefix):
    rid, agg, outbox = await _setup(redis_client, prefix, {"json_schema": {"schema": SCHEMA}})
    bad = make_result(rid, text="Sure! name: Ana", origin=None, cost_usd=0.5)
    await agg.on_result(bad)
    await agg.on_result(bad)  # redelivered: the repair is not sent twice
    assert outbox.responses == []
    [repair] = outbox.tasks
    assert repair.plan.step == 1 and repair.model == "m0"
    assert repair.messages[-2].content == "Sure! name: Ana"
    assert "JSON Schema" in repair.messages[-1].content
    good = make_result(rid, text='{"name": "Ana"}', origin=None, cost_usd=0.25,
                       plan=ExecutionPlan(step=1))
    await agg.on_result(good)
    [response] = outbox.responses
    assert response.status == "ok" and json.loads(response.output) == {"name": "Ana"}
    assert response.cost_usd == 0.75 and [p.step for p in response.parts] == [0, 1]
    assert [(f.guard, f.action) for f in response.guardrails] == [("json_schema", "repaired")]


async def test_output_still_invalid_after_repairs_is_an_error_never_ok(redis_client, prefix):
    rid, agg, outbox = await _setup(redis_client, prefix,
                                    {"json_schema": {"schema": SCHEMA, "repairs": 1}})
    await agg.on_result(make_result(rid, text="nope", origin=None))
    await agg.on_result(make_result(rid, text='{"name": 5}', origin=None,
                                    plan=ExecutionPlan(step=1)))
    [response] = outbox.responses
    assert response.status == "error" and response.output is None
    assert response.error.code == "output_invalid"
    assert "schema violation at name" in response.error.message
    assert "5" not in response.error.message.split("name")[1]
    assert response.guardrails[-1].action == "denied"


async def test_a_cascade_answer_that_fails_the_schema_is_denied(redis_client, prefix):
    rid, agg, outbox = await _setup(redis_client, prefix, {"json_schema": {"schema": SCHEMA}},
                                    task=False)
    tiers = [CascadeTier(target=Target(provider="openai", model="m0"),
                         check=CheckSpec(kind="json_schema", json_schema=SCHEMA)),
             CascadeTier(target=Target(provider="openai", model="m1"))]
    plan = ExecutionPlan(mode="cascade", cascade=tiers)
    await agg.on_result(make_result(rid, text="bad", plan=plan))
    [escalated] = outbox.tasks
    assert escalated.model == "m1"
    await agg.on_result(make_result(rid, text="still bad", model="m1",
                                    plan=plan.model_copy(update={"step": 1})))
    [response] = outbox.responses
    assert response.status == "error" and response.error.code == "output_invalid"


async def test_deny_list_regex_and_output_pii(redis_client, prefix):
    rid, agg, outbox = await _setup(redis_client, prefix, {
        "regex": [{"name": "no-urls", "pattern": r"https?://\S+", "mode": "mutate"}],
        "deny_list": {"terms": ["acme secret"], "mode": "flag"},
        "pii": {"mode": "mutate"},
    })
    await agg.on_result(make_result(
        rid, origin=None, text="See http://x.io, the ACME secret, mail bob@corp.example"))
    [response] = outbox.responses
    assert response.output == "See [REDACTED] the ACME secret, mail [EMAIL]"
    actions = {f.guard: (f.action, f.categories) for f in response.guardrails}
    assert actions == {"regex:no-urls": ("redacted", {"no-urls": 1}),
                       "deny_list": ("flagged", {"deny_list": 1}),
                       "pii": ("redacted", {"email": 1})}


async def test_deny_list_validate_denies(redis_client, prefix):
    rid, agg, outbox = await _setup(redis_client, prefix, {"deny_list": {"terms": ["forbidden"]}})
    await agg.on_result(make_result(rid, origin=None, text="a Forbidden word"))
    [response] = outbox.responses
    assert response.status == "error" and "deny_list" in response.error.message


async def test_placeholders_are_restored_for_the_caller_only(redis_client, prefix):
    redacted = GuardrailFinding(guard="pii", stage="input", mode="mutate", action="redacted",
                                categories={"card": 1})
    settled = []

    async def settle(decision):
        settled.append(decision)

    rid, agg, outbox = await _setup(redis_client, prefix, {}, findings=[redacted],
                                    restore={"[CARD_1]": "4111 1111 1111 1111"},
                                    after_response=settle)
    await agg.on_result(make_result(rid, origin=None, text="charged [CARD_1]"))
    [response] = outbox.responses
    assert response.output == "charged 4111 1111 1111 1111"
    assert response.guardrails == [redacted]
    # what is stored and cached (the decision settlement sees) keeps the placeholder
    assert [d.response.output for d in settled] == ["charged [CARD_1]"]


async def test_requests_without_a_record_pass_untouched(redis_client, prefix):
    outbox = Outbox()
    agg = Aggregator(FanInStore(redis_client, prefix, 10_000), outbox,
                     guards=OutputGuardian(redis_client))
    await agg.on_result(make_result(f"none-{uuid.uuid4().hex[:6]}", origin=None, text="x@y.io"))
    [response] = outbox.responses
    assert response.output == "x@y.io" and response.guardrails == []


class _CountingGuardian(OutputGuardian):
    """The real guardian, counting its guard-record lookups."""

    def __init__(self, redis) -> None:
        super().__init__(redis)
        self.lookups = 0

    async def _load(self, request_id):
        self.lookups += 1
        return await super()._load(request_id)


async def test_the_plans_flag_decides_whether_the_guard_record_is_looked_up(redis_client, prefix):
    """``guard_record=False`` (the router stored none) spares the lookup; unknown (an older
    router) or True looks it up, so a stored deny still applies."""
    outcomes = {}
    for flag in (False, None, True):
        rid, _, outbox = await _setup(redis_client, prefix,
                                      {"deny_list": {"terms": ["acme secret"]}})
        guardian = _CountingGuardian(redis_client)
        agg = Aggregator(FanInStore(redis_client, prefix, 10_000), outbox, guards=guardian,
                         clock=lambda: T0 + timedelta(seconds=1))
        await agg.on_result(make_result(rid, text="the acme secret is 42", origin=None,
                                        plan=ExecutionPlan(guard_record=flag)))
        [response] = outbox.responses
        outcomes[flag] = (guardian.lookups, response.status)
    assert outcomes == {False: (0, "ok"), None: (1, "error"), True: (1, "error")}
