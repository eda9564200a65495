"""Guardrails through a real broker, router, worker, simulator and aggregator.

The simulator's default reply echoes the first words of the last user message it
received, so the result event on ``modelbus.results.v1`` (the model's own reply, before
the aggregator) shows what the hosted model saw; the response shows what the caller got.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from modelbus_schemas import ApprovalDecisionEvent
from modelbus_schemas.topics import APPROVALS_DECISIONS, APPROVALS_PENDING, RESULTS

from tests.guardrails.conftest import bodies_of
from tests.upstream import request_json

pytestmark = pytest.mark.e2e

CARD = "4111 1111 1111 1111"
PEM = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
       "-----END OPENSSH PRIVATE KEY-----")


async def _ask(bus, rid: str, task: str, text: str, **extra) -> tuple[dict, dict | None]:
    """Send one request; its response and the model's raw result (None if no model ran)."""
    responses, results = await bus.tail(), await bus.tail(RESULTS)
    try:
        async with bus.upstream() as up:
            await up.send(request_json(rid, task=task, text=text, **extra))
            [response] = await bodies_of(responses, rid)
            found = await bodies_of(results, rid, timeout=2 if response["status"] == "error"
                                    and not response.get("models") else 30)
    finally:
        await responses.stop()
        await results.stop()
    return response, (found[-1] if found else None)


async def test_card_number_reaches_the_model_redacted_and_stays_redacted(guard_bus):
    rid = guard_bus.rid("redact")
    response, result = await _ask(guard_bus, rid, "gr-redact", f"Charge card {CARD} for me")
    assert result["text"] == "[gr-echo] Charge card [CARD_1] for me"  # what the model saw
    assert response["status"] == "ok"
    assert response["output"] == "[gr-echo] Charge card [CARD_1] for me"
    [finding] = response["guardrails"]
    assert finding == {"guard": "pii", "stage": "input", "mode": "mutate",
                       "action": "redacted", "categories": {"card": 1},
                       "detail": "irreversible"}


async def test_card_number_is_restored_for_the_caller_where_the_route_allows(guard_bus):
    rid = guard_bus.rid("restore")
    response, result = await _ask(guard_bus, rid, "gr-restore",
                                  f"Charge card {CARD} for ana@example.com")
    assert result["text"] == "[gr-echo] Charge card [CARD_1] for [EMAIL_1]"
    assert CARD not in json.dumps(result)
    assert response["output"] == f"[gr-echo] Charge card {CARD} for ana@example.com"
    assert response["guardrails"][0]["categories"] == {"card": 1, "email": 1}


async def test_private_key_is_denied_with_a_clear_error(guard_bus):
    rid = guard_bus.rid("secret")
    before = guard_bus.calls("gr-echo")
    response, result = await _ask(guard_bus, rid, "gr-redact", f"Why does ssh fail?\n{PEM}")
    assert response["status"] == "error"
    assert response["error"]["code"] == "guardrail_denied"
    assert "private_key" in response["error"]["message"]
    assert "b3BlbnNzaC" not in json.dumps(response)
    assert response["guardrails"][0]["action"] == "denied"
    assert result is None and guard_bus.calls("gr-echo") == before


async def test_invalid_json_is_repaired_once_then_refused_never_returned_as_valid(guard_bus):
    guard_bus.behave("gr-json-bad", reply="Sure! The name is Ana.")
    rid = guard_bus.rid("json")
    before = guard_bus.calls("gr-json-bad")
    response, _ = await _ask(guard_bus, rid, "gr-json", "Give me the name as JSON")
    assert response["status"] == "error" and response.get("output") is None
    assert response["error"]["code"] == "output_invalid"
    assert "output is not JSON, after 1 repair attempt(s)" in response["error"]["message"]
    assert guard_bus.calls("gr-json-bad") == before + 2  # the answer and one repair
    assert [p["step"] for p in response["parts"]] == [0, 1]


async def test_invalid_json_escalates_through_the_cascade(guard_bus):
    guard_bus.behave("gr-json-bad", reply="not json")
    guard_bus.behave("gr-json-good", reply='{"name": "Ana"}')
    rid = guard_bus.rid("cascade")
    response, _ = await _ask(guard_bus, rid, "gr-json-cascade", "Give me the name as JSON")
    assert response["status"] == "ok"
    assert json.loads(response["output"]) == {"name": "Ana"}
    assert response["models"] == ["openai/gr-json-good"]
    assert response["path"] == ["openai/gr-json-bad", "openai/gr-json-good"]


async def _decide(guard_bus, rid: str, approved: bool) -> None:
    decision = ApprovalDecisionEvent(request_id=rid, tenant="acme", approved=approved,
                                     approver="carol@acme",
                                     comment=None if approved else "not this quarter",
                                     decided_at=datetime.now(UTC))
    await guard_bus.producer.publish(APPROVALS_DECISIONS, decision, key=rid,
                                     event_id=decision.event_id())


@pytest.mark.parametrize("approved", [True, False])
async def test_approval_gated_request_waits_then_follows_the_decision(guard_bus, approved):
    rid = guard_bus.rid("gate")
    responses, pending = await guard_bus.tail(), await guard_bus.tail(APPROVALS_PENDING)
    try:
        async with guard_bus.upstream() as up:
            await up.send(request_json(rid, task="gr-gated", text="Quarterly numbers please",
                                       metadata={"approval": "required"}))
            [parked] = await bodies_of(pending, rid)
            assert parked["reason"] == "metadata approval=required"
            assert parked["task"] == "gr-gated" and "messages" not in parked
            # parked: the pending event came out and no response was sent
            assert await bodies_of(responses, rid, timeout=1.0) == []
            await _decide(guard_bus, rid, approved)
            await _decide(guard_bus, rid, not approved)  # a later decision changes nothing
            [response] = await bodies_of(responses, rid, timeout=30)
            assert await bodies_of(responses, rid, timeout=1.0) == []  # exactly one
    finally:
        await responses.stop()
        await pending.stop()
    if approved:
        assert response["status"] == "ok"
        assert response["output"] == "[gr-echo] Quarterly numbers please"
    else:
        assert response["status"] == "error"
        assert response["error"]["code"] == "approval_rejected"
        assert response["error"]["message"] == \
            "approval rejected by carol@acme: not this quarter"
