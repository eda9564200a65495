"""Benchmark: CPU cost of signing and verifying the internal events of one request.

A single-target request crosses the bus as request → task → result → response. The request
is unsigned by default (upstreams in any language write it); each of the three internal
events is signed once by its producer (router, adapter worker, aggregator) and verified
once by its consumer (the worker, the aggregator, the response's reader); the audit
verifies the three again. This times exactly that with :mod:`modelbus_runtime.signing` on events built
from the contract models with realistic sizes (a ~1.5 KB prompt, a ~1 KB answer, the routing
decision carried on the task), and prints the median µs per request:

- ``path``: 3 signs + 3 verifies (what the request path pays),
- ``with_audit``: ``path`` + the audit's 3 verifies,
- ``signed_request``: the optional per-tenant signed-request mode (1 sign upstream + 1
  verify in the router), on top of ``path``,

plus the median of each single operation and the event sizes. No broker: the figure is
pure CPU, measured over ``--iterations`` requests (default 20,000) after a warm-up.
Writes ``bench/results/signing.json``.

    uv run python bench/signing_bench.py [--iterations 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from modelbus_runtime.signing import KeyRing, Signer, TenantKeys, verify
from modelbus_schemas import (
    ChatMessage,
    ModelRef,
    ResponseEvent,
    ResultEvent,
    RoutingDecision,
    TaskEvent,
    encode,
)
from modelbus_schemas import cloudevents as ce
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import (
    AGGREGATOR,
    REQUESTS,
    RESPONSES,
    RESULTS,
    ROUTER,
    WORKER,
    tasks_topic,
    writer_roles,
)

RESULTS_DIR = Path(__file__).parent / "results"
PROMPT = ("Summarise the following incident report for the on-call channel in three bullet "
          "points, keeping every figure. ") + "The consumer lag on the results topic grew " * 30
ANSWER = "- The aggregator fell behind after a rebalance; lag peaked at 41,000 records. " * 12


def _events() -> list[tuple[str, str, bytes, bytes, bytes]]:
    """(producer role, topic, key, value, ce_id) of the task, result and response of one
    single-target request, encoded as the services encode them."""
    now = datetime.now(UTC)
    rid, tenant = "req-7f3c2a9e-0b1d-4c55-9a7e-2f6d1e8b4c10", "acme"
    scope = scoped_id(tenant, rid)
    decision = RoutingDecision(policy_version="sha256:" + "ab" * 32, route="summarize-internal",
                               strategy="single",
                               selected=[ModelRef(provider="openai", model="gpt-4o-mini")],
                               matched_rule="internal-summaries", decided_at=now)
    task = TaskEvent(event_id=TaskEvent.make_id(scope, 0), request_id=rid, task="summarize",
                     part_id=0, parts_total=1, provider="openai", model="gpt-4o-mini",
                     messages=[ChatMessage(role="user", content=PROMPT)],
                     caller={"tenant": tenant, "team": "sre", "user": "oncall-bot"},
                     received_at=now, deadline_at=now + timedelta(seconds=30),
                     decision=decision)
    result = ResultEvent(event_id=ResultEvent.make_id(scope, 0), request_id=rid, tenant=tenant,
                         task="summarize", part_id=0, parts_total=1, provider="openai",
                         model="gpt-4o-mini", status="ok", text=ANSWER, finish_reason="stop",
                         usage={"input_tokens": 420, "output_tokens": 260}, cost_usd=0.00022,
                         latency_ms=812.5, received_at=now, policy_version=decision.policy_version)
    response = ResponseEvent(event_id=ResponseEvent.make_id(scope), request_id=rid,
                             tenant=tenant, task="summarize", status="ok", output=ANSWER,
                             finish_reason="stop", models=["openai/gpt-4o-mini"],
                             usage={"input_tokens": 420, "output_tokens": 260},
                             cost_usd=0.00022, latency_ms=840.0,
                             policy_version=decision.policy_version, created_at=now)
    return [(ROUTER, tasks_topic("openai"), rid.encode(), encode(task), task.event_id.encode()),
            (WORKER, RESULTS, rid.encode(), encode(result), result.event_id.encode()),
            (AGGREGATOR, RESPONSES, rid.encode(), encode(response), response.event_id.encode())]


def _ce_type(topic: str) -> bytes:
    if topic == RESULTS:
        return ResultEvent.CE_TYPE.encode()
    if topic == RESPONSES:
        return ResponseEvent.CE_TYPE.encode()
    return TaskEvent.CE_TYPE.encode()


def measure(iterations: int) -> dict:
    ring = KeyRing.parse(KeyRing.generate("bench") + "," + KeyRing.generate("old"))
    signers = {role: Signer(ring, role) for role in (ROUTER, WORKER, AGGREGATOR)}
    events = _events()
    plain = [(role, topic, key, value, ce.ce_headers(event_id=ce_id.decode(),
                                                     ce_type=_ce_type(topic).decode(),
                                                     source=f"/modelbus/{role}"))
             for role, topic, key, value, ce_id in events]
    allowed = {topic: writer_roles(topic) for _, topic, *_ in events}
    tenant_ring = KeyRing.parse(KeyRing.generate("t1"))
    tenant_keys = TenantKeys({"acme": tenant_ring})
    upstream = TenantKeys.signer(tenant_ring, "acme")
    request_value = json.dumps({"request_id": events[0][2].decode(), "task": "summarize",
                                "caller": {"tenant": "acme"},
                                "messages": [{"role": "user", "content": PROMPT}]}).encode()
    request_headers = ce.ce_headers(event_id="req-1", ce_type=ce.TYPE_REQUEST,
                                    source="/upstream/acme")

    def one_request() -> tuple[int, int, int]:
        t0 = time.perf_counter_ns()
        signed = []
        for role, topic, key, value, headers in plain:
            sig = signers[role].header(topic, key, value, headers_id(headers), _ce_type(topic))
            signed.append((topic, key, value, [*headers, sig]))
        t_signed = time.perf_counter_ns()
        for topic, key, value, headers in signed:
            verify(ring, topic=topic, key=key, value=value, headers=headers,
                   allowed_roles=allowed[topic])
        t_path = time.perf_counter_ns()
        for topic, key, value, headers in signed:  # the audit
            verify(ring, topic=topic, key=key, value=value, headers=headers,
                   allowed_roles=allowed[topic])
        t_audit = time.perf_counter_ns()
        return t_signed - t0, t_path - t0, t_audit - t_path

    def signed_request() -> int:
        t0 = time.perf_counter_ns()
        sig = upstream.header(REQUESTS, b"req-1", request_value, b"req-1",
                              ce.TYPE_REQUEST.encode())
        tenant_keys.verify("acme", topic=REQUESTS, key=b"req-1", value=request_value,
                           headers=[*request_headers, sig])
        return time.perf_counter_ns() - t0

    for _ in range(min(2000, iterations)):  # warm-up: role keys cached, code paths hot
        one_request()
        signed_request()
    sign_ns, path_ns, audit_ns, request_ns = [], [], [], []
    for _ in range(iterations):
        s, p, a = one_request()
        sign_ns.append(s)
        path_ns.append(p)
        audit_ns.append(a)
        request_ns.append(signed_request())

    def us(values: list[int]) -> float:
        return round(statistics.median(values) / 1000, 2)

    def p99(values: list[int]) -> float:
        return round(sorted(values)[int(len(values) * 0.99) - 1] / 1000, 2)

    with_audit = [p + a for p, a in zip(path_ns, audit_ns, strict=True)]
    return {
        "iterations": iterations,
        "event_bytes": {"task": len(events[0][3]), "result": len(events[1][3]),
                        "response": len(events[2][3]), "signed_request": len(request_value)},
        "path_us_median": us(path_ns),
        "path_us_p99": p99(path_ns),
        "with_audit_us_median": us(with_audit),
        "signed_request_mode_extra_us_median": us(request_ns),
        "sign_3_events_us_median": us(sign_ns),
        "verify_3_events_us_median": us([p - s for p, s in zip(path_ns, sign_ns, strict=True)]),
        "per_sign_us_median": round(statistics.median(sign_ns) / 3 / 1000, 2),
        "per_verify_us_median": round(statistics.median(audit_ns) / 3 / 1000, 2),
    }


def headers_id(headers: list[tuple[str, bytes]]) -> bytes:
    return next(value for name, value in headers if name == "ce_id")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    report = measure(args.iterations)
    sizes = report["event_bytes"]
    print(f"signing (HMAC-SHA256), one single-target request, {args.iterations} iterations; "
          f"task {sizes['task']} B, result {sizes['result']} B, response {sizes['response']} B")
    print(f"  request path (3 signs + 3 verifies): median {report['path_us_median']} µs, "
          f"p99 {report['path_us_p99']} µs")
    print(f"  with the audit's 3 verifies:         median {report['with_audit_us_median']} µs")
    print(f"  signed-request mode adds:            median "
          f"{report['signed_request_mode_extra_us_median']} µs")
    print(f"  one sign {report['per_sign_us_median']} µs, one verify "
          f"{report['per_verify_us_median']} µs (medians)")
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "signing.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"  written to {RESULTS_DIR / 'signing.json'}")


if __name__ == "__main__":
    main()
