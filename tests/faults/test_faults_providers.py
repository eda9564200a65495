"""Provider outage, 429 storm and hangs: every request still gets exactly one response."""

from __future__ import annotations

import uuid

import pytest
from modelbus_testing.simulator import simulate

from tests.faults.ledger import Recorder, check_lineage, explain_lost, tally
from tests.faults.load import produce_at_rate

pytestmark = pytest.mark.faults

N = 60

SCENARIOS = {
    "provider outage (all 503)": {"fail_first": 10**6,
                                  "failure": {"kind": "status", "status": 503}},
    "429 storm with Retry-After": {"failure_rate": 0.7, "seed": 7, "failure": {
        "kind": "status", "status": 429, "retry_after_s": 0.05}},
    "provider hangs": {"fail_first": 10**6, "failure": {"kind": "hang"}},
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_provider_faults_end_in_exactly_one_response(fault_stack, record_report, name):
    stack = fault_stack
    simulate(stack, "gpt-4o-mini", latency_ms=10, **SCENARIOS[name])
    ids = [f"prov-{uuid.uuid4().hex[:6]}-{i}" for i in range(N)]
    rec = Recorder(stack.bootstrap)
    await rec.start()
    budget = {"latency_budget_ms": 3000} if "hang" in name else {}
    await produce_at_rate(stack.bootstrap, ids, 30.0, **budget)
    await rec.wait(ids, timeout=120)
    await rec.stop()
    report = tally(name, ids, rec)
    await explain_lost(rec, report)
    await check_lineage(stack.database_url, ids, rec, report)
    record_report(report)

    assert report.lost == 0 and report.duplicates == 0, report.notes
    assert report.lineage_incomplete == 0, report.notes
    # the stack answered only this scenario's requests: nothing left over from another one
    assert set(rec.responses) <= set(ids), sorted(set(rec.responses) - set(ids))[:5]
    if "429" in name:
        assert report.errors < N, "most requests get through a 70% 429 storm with retries"
    else:
        assert report.errors == N, "a dead provider yields clear error responses"
        codes = {(rec.responses[i][0].get("error") or {}).get("code", "none")
                 for i in ids if i in rec.responses}
        # the circuit opens during the outage: later requests are refused by the router
        assert codes <= {"retries_exhausted", "deadline_exceeded", "provider_unavailable",
                         "no_eligible_model"}

