"""The worker's resilience over real HTTP against the simulator, one provider at a time:
retry then success, Retry-After, terminal 400, truncated and hanging streams, for each of
the three wire formats (the handler is the one app.py builds, in process)."""

from __future__ import annotations

import pytest
from modelbus_schemas import ResultEvent, RetrySpec

from tests.worker.worker_helpers import handle_in_process, unique

PROVIDERS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}


@pytest.fixture(params=list(PROVIDERS))
def provider(request) -> str:
    return request.param


async def _run(sim, redis_url, provider, model, *, stream=True, **task_fields) -> ResultEvent:
    return await handle_in_process(sim, redis_url, provider, model, stream=stream,
                                   settings={"base_delay_ms": 10},
                                   text="tell me a story please", **task_fields)


@pytest.mark.parametrize("stream", [True, False])
async def test_worker_plain_success_has_canonical_fields(sim, redis_url, provider, stream):
    model = unique(PROVIDERS[provider])
    sim.behave(model, latency_ms=5)
    result = await _run(sim, redis_url, provider, model, stream=stream)
    assert result.status == "ok", result.error
    assert result.text.startswith(f"[{model}]") and "tell me a story" in result.text
    assert result.finish_reason == "stop"
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert result.response_model == model
    assert (result.ttft_ms is not None) == stream
    assert [a.provider for a in result.attempts] == [provider]


async def test_worker_retries_then_succeeds(sim, redis_url, provider):
    model = unique(PROVIDERS[provider])
    sim.behave(model, fail_first=2, failure={"kind": "status", "status": 503})
    result = await _run(sim, redis_url, provider, model)
    assert result.status == "ok", result.error
    assert [a.status_code for a in result.attempts] == [503, 503, 200]
    assert sim.calls(model) == 3


async def test_worker_honours_retry_after(sim, redis_url, provider):
    model = unique(PROVIDERS[provider])
    sim.behave(model, fail_first=1, failure={"kind": "status", "status": 429,
                                             "retry_after_s": 1.2})
    result = await _run(sim, redis_url, provider, model,
                        retry=RetrySpec(max_attempts=3, base_delay_ms=1, max_delay_ms=5))
    assert result.status == "ok", result.error
    first, second = result.attempts
    assert first.status_code == 429
    # Our own backoff would have waited at most 5 ms; the provider asked for 1.2 s.
    assert (second.started_at - first.started_at).total_seconds() >= 1.2


async def test_worker_does_not_retry_a_400(sim, redis_url, provider):
    model = unique(PROVIDERS[provider])
    sim.behave(model, fail_first=5, failure={"kind": "status", "status": 400,
                                             "message": "bad field"})
    result = await _run(sim, redis_url, provider, model)
    assert result.status == "error"
    assert result.error.code == "provider_terminal" and "bad field" in result.error.message
    assert sim.calls(model) == 1 and len(result.attempts) == 1


async def test_worker_retries_a_truncated_stream(sim, redis_url, provider):
    model = unique(PROVIDERS[provider])
    sim.behave(model, fail_first=1, failure={"kind": "truncate"})
    result = await _run(sim, redis_url, provider, model)
    assert result.status == "ok", result.error
    assert [a.error_code for a in result.attempts] == ["truncated_stream", None]
    assert sim.calls(model) == 2
    assert result.finish_reason == "stop"


async def test_worker_truncated_stream_is_never_a_complete_answer(sim, redis_url, provider):
    model = unique(PROVIDERS[provider])
    sim.behave(model, fail_first=10, failure={"kind": "truncate"})
    result = await _run(sim, redis_url, provider, model, retry=RetrySpec(max_attempts=2,
                                                                         base_delay_ms=1))
    assert result.status == "error" and result.text is None
    assert result.error.code == "retries_exhausted"
    assert "terminal event" in result.error.message


async def test_worker_times_out_a_hanging_call_and_retries(sim, redis_url, provider):
    model = unique(PROVIDERS[provider])
    sim.behave(model, fail_first=1, failure={"kind": "hang", "hang_s": 30})
    result = await _run(sim, redis_url, provider, model, retry=RetrySpec(
        max_attempts=2, base_delay_ms=1, attempt_timeout_ms=500))
    assert result.status == "ok", result.error
    assert [a.error_code for a in result.attempts] == ["timeout", None]


async def test_worker_retries_a_malformed_body(sim, redis_url, provider):
    model = unique(PROVIDERS[provider])
    sim.behave(model, fail_first=1, failure={"kind": "malformed"})
    result = await _run(sim, redis_url, provider, model, stream=False)
    assert result.status == "ok", result.error
    assert result.attempts[0].error_code == "malformed_response"
