"""The gateway's admission limits and access log, over HTTP against real gateway processes
(the session's broker and Redis): per-key rate limits shared by two replicas through Redis
(429 + Retry-After in OpenAI's shape), the throttle on failed authentication per client
address, the body limit (413 for a 50 MB body, with or without Content-Length, without the
gateway reading it into memory) and the JSON access line of each call."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from modelbus_cli.stack import Stack
from modelbus_gateway.auth import hash_key

pytestmark = pytest.mark.e2e

RATE, BURST = 30, 5  # per key per minute, at once on top
EVENT_LIMIT = 256 * 1024  # the largest request event the router reads, below 1 MiB
MESSAGES = [{"role": "user", "content": "hello"}]


class Gateways:
    def __init__(self, stack: Stack, keys: dict[str, str], prefix: str) -> None:
        self.stack, self.keys, self.prefix = stack, keys, prefix
        self.urls = [stack.health["gateway-a"], stack.health["gateway-b"]]

    def auth(self, name: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[name]}"}

    def log_lines(self, name: str = "gateway-a") -> list[dict]:
        path = Path(self.stack.group.workdir) / "logs" / f"{name}.log"
        lines = []
        for raw in path.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines

    def vm_hwm_kib(self, name: str = "gateway-a") -> int:
        """Peak resident memory of a gateway process."""
        pid = self.stack.child(name).proc.pid
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def gateways(tmp_path_factory, kafka_bootstrap, redis_url):
    """Two gateway replicas with a small per-key limit, sharing one Redis key prefix."""
    keys = {name: f"sk-limits-{name}-{uuid.uuid4().hex}" for name in ("a", "b", "free", "log")}
    tenant = f"lim-{uuid.uuid4().hex[:6]}"
    entries = [{"key_sha256": hash_key(k), "tenant": tenant, "team": name}
               | ({"requests_per_min": 0} if name == "free" else {})
               for name, k in keys.items()]
    prefix = f"mb:gwtest-{uuid.uuid4().hex[:8]}"
    stack = Stack(tmp_path_factory.mktemp("gw-limits"))
    stack.bootstrap, stack.redis_url = kafka_bootstrap, redis_url
    env = {"MODELBUS_API_KEYS": json.dumps(entries),
           "MODELBUS_KEY_REQUESTS_PER_MIN": str(RATE), "MODELBUS_KEY_BURST": str(BURST),
           "MODELBUS_RATE_LIMIT_PREFIX": prefix, "MODELBUS_MAX_BODY_BYTES": str(1 << 20),
           "MODELBUS_DEFAULT_LATENCY_BUDGET_MS": "1000"}
    try:  # a: the router reads requests up to EVENT_LIMIT; b: bodies up to 8 MiB
        stack.start_service("gateway-a", "modelbus_gateway.app",
                            {**env, "MODELBUS_MAX_REQUEST_BYTES": str(EVENT_LIMIT)})
        stack.start_service("gateway-b", "modelbus_gateway.app",
                            {**env, "MODELBUS_MAX_BODY_BYTES": str(8 << 20)})
        stack.wait_ready()
        yield Gateways(stack, keys, prefix)
    finally:
        stack.stop()
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_a_keys_limit_is_shared_by_replicas_and_answers_429_with_retry_after(gateways):
    statuses, refused = [], None
    started = time.monotonic()
    with httpx.Client(timeout=10) as http:
        for i in range(16):  # alternately on both replicas
            r = http.get(gateways.urls[i % 2] + "/v1/models", headers=gateways.auth("a"))
            statuses.append(r.status_code)
            refused = refused or (r if r.status_code == 429 else None)
        elapsed = time.monotonic() - started
        other = http.get(gateways.urls[0] + "/v1/models", headers=gateways.auth("b"))
        free = [http.get(gateways.urls[0] + "/v1/models", headers=gateways.auth("free"))
                for _ in range(20)]
    admitted = statuses.count(200)
    # BURST + 1 at once, then one more per emission interval (2 s) that passed
    assert BURST + 1 <= admitted <= BURST + 2 + int(elapsed * RATE / 60), (statuses, elapsed)
    assert 429 in statuses and admitted < 2 * (BURST + 1), \
        "one limit for both replicas: each on its own would have admitted more"
    error = _error(refused)
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert gateways.keys["a"] not in error["message"]
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 60 / RATE + 1
    assert other.status_code == 200, "each key has its own limit"
    assert {r.status_code for r in free} == {200}, "an entry's requests_per_min: 0 is unlimited"

    time.sleep(wait)
    with httpx.Client(timeout=10) as http:
        again = http.get(gateways.urls[1] + "/v1/models", headers=gateways.auth("a"))
    assert again.status_code == 200, "admitted again after Retry-After"


def test_openai_sdk_sees_a_rate_limit_error(gateways):
    import openai

    client = openai.OpenAI(base_url=gateways.urls[0] + "/v1", api_key=gateways.keys["b"],
                           max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        for _ in range(BURST + 3):
            client.models.list()
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"]


def test_body_above_the_limit_is_413_without_being_read(gateways):
    url = gateways.urls[0] + "/v1/chat/completions"
    big = b"x" * (50 * 1024 * 1024)
    before = gateways.vm_hwm_kib()
    with httpx.Client(timeout=60) as http:
        declared = http.post(url, content=big, headers=gateways.auth("free"))

        def chunks():  # no Content-Length: chunked transfer
            for i in range(0, len(big), 1 << 16):
                yield big[i:i + (1 << 16)]

        streamed = http.post(url, content=chunks(), headers=gateways.auth("free"))
        small = http.post(url, json={"model": "summarize", "messages": MESSAGES},
                          headers={**gateways.auth("free"), "x-modelbus-latency-budget-ms": "200"})
    for response in (declared, streamed):
        assert response.status_code == 413
        error = _error(response)
        assert error["code"] == "request_too_large" and str(1 << 20) in error["message"]
        assert response.headers["x-request-id"].startswith("gw-")
    assert "transfer-encoding" not in declared.request.headers
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    assert small.status_code != 413, "a body under the limit is read and handled"
    grown_mib = (gateways.vm_hwm_kib() - before) / 1024
    assert grown_mib < 20, f"peak memory grew {grown_mib:.0f} MiB: the body was buffered"


@pytest.fixture
def forget_failures(gateways):
    """The throttle of 127.0.0.1 is lifted after the test, for the tests that follow."""
    yield
    client = redis.Redis.from_url(gateways.stack.redis_url)
    for key in client.scan_iter(f"{gateways.prefix}:{{authfail:*"):
        client.delete(key)


def _with_tool_arguments(size: int, calls: int = 1) -> dict:
    """A conversation whose assistant turn carries ``calls`` tool calls of ``size`` bytes of
    arguments each: content that travels inline (claim check stores message parts only)."""
    arguments = json.dumps({"blob": "z" * size})
    return {"model": "summarize", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function",
             "function": {"name": "store", "arguments": arguments}} for i in range(calls)]},
        *({"role": "tool", "tool_call_id": f"c{i}", "content": "stored"}
          for i in range(calls))]}


def test_a_body_whose_event_modelbus_would_not_take_is_413_at_once(gateways):
    """A body under the body limit whose request event is larger than the router reads, or
    than the event log accepts, even after claim check, is refused at once, not left to time
    out (504) or answered as an outage (503)."""
    started = time.monotonic()
    with httpx.Client(timeout=10) as http:
        unread = http.post(gateways.urls[0] + "/v1/chat/completions",
                           headers=gateways.auth("free"), json=_with_tool_arguments(400_000))
        unsent = http.post(gateways.urls[1] + "/v1/chat/completions",
                           headers=gateways.auth("free"), json=_with_tool_arguments(600_000, calls=2))
    assert time.monotonic() - started < 1.0, "answered at once, not at the 1 s deadline"
    assert unread.status_code == 413 and unsent.status_code == 413, (unread.text, unsent.text)
    error = _error(unread)
    assert error["code"] == "request_too_large" and str(EVENT_LIMIT) in error["message"]
    error = _error(unsent)
    assert error["code"] == "request_too_large" and "event log" in error["message"]


def test_repeated_failed_authentication_from_one_address_gets_429(gateways, forget_failures):
    statuses, refused = [], None
    started = time.monotonic()
    with httpx.Client(timeout=10) as http:
        for i in range(200):
            r = http.post(gateways.urls[i % 2] + "/v1/chat/completions",
                          json={"model": "summarize", "messages": MESSAGES},
                          headers={"authorization": f"Bearer sk-wrong-{i:04d}-guess"})
            statuses.append(r.status_code)
            refused = r if r.status_code == 429 else refused
        valid = http.get(gateways.urls[0] + "/v1/models", headers=gateways.auth("log"))
    elapsed = time.monotonic() - started
    first_429 = statuses.index(429)
    assert statuses[:first_429] == [401] * first_429
    assert 20 <= first_429 <= 23, "the default burst of 20 failures, then the throttle"
    # then the sustained default of 10 failures a minute: one 401 per 6 s that passed
    assert statuses[first_429:].count(401) <= 1 + int(elapsed * 10 / 60), (statuses, elapsed)
    assert set(statuses[first_429:]) <= {401, 429}
    error = _error(refused)
    assert error["code"] == "auth_throttled"
    assert int(refused.headers["retry-after"]) >= 1
    assert valid.status_code == 429, "a throttled address cannot test keys, valid ones too"


def test_each_call_writes_one_json_access_line_without_secrets(gateways):
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    with httpx.Client(timeout=10) as http:
        ok = http.get(gateways.urls[0] + "/v1/models",
                      headers={**gateways.auth("log"), "traceparent": traceparent})
        denied = http.get(gateways.urls[0] + "/v1/models",
                          headers={"authorization": "Bearer sk-not-a-key-123456789"})
    time.sleep(0.5)
    lines = [line for line in gateways.log_lines() if line.get("kind") == "access"]
    by_id = {line["request_id"]: line for line in lines}
    served = by_id[ok.headers["x-request-id"]]
    assert served["level"] == "info" and served["logger"] == "modelbus.gateway.access"
    assert served["method"] == "GET" and served["path"] == "/v1/models"
    assert served["status"] == 200 and served["duration_ms"] > 0
    assert served["trace_id"] == trace_id, "the caller's trace continues"
    assert served["key_id"] == hash_key(gateways.keys["log"])[:12]
    assert served["tenant"] and served["client"] == "127.0.0.1"
    refused = by_id[denied.headers["x-request-id"]]
    assert refused["status"] == 401 and refused["key_id"] is None
    assert len(refused["trace_id"]) == 32, "a caller that does not trace gets a trace id"
    text = "\n".join(json.dumps(line) for line in lines)
    assert gateways.keys["log"] not in text and "sk-not-a-key" not in text
    assert "hello" not in text, "no body"
