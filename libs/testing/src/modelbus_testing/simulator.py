"""The provider simulator's admin API as tests drive it: script a model, count calls."""

from __future__ import annotations

import time

import httpx


def simulate(stack, model: str, **behaviour) -> None:
    """Script ``model`` (latency_ms, errors, hangs: see the simulator's README)."""
    httpx.put(f"{stack.simulator_url}/_sim/models/{model}", json=behaviour).raise_for_status()


def unsimulate(stack, model: str) -> None:
    """Back to the default behaviour."""
    httpx.delete(f"{stack.simulator_url}/_sim/models/{model}").raise_for_status()


def provider_calls(stack, model: str | None = None) -> int:
    """Calls the simulator answered so far, for one model or all of them."""
    stats = httpx.get(f"{stack.simulator_url}/_sim/stats").json()
    if model is None:
        return stats["total_calls"]
    return stats["models"].get(model, {}).get("calls", 0)


def calls_in_flight(stack) -> int:
    """Provider calls the simulator has received and not yet answered."""
    return httpx.get(f"{stack.simulator_url}/_sim/stats").json()["in_flight"]


def calls_when_quiet(stack, timeout: float = 5.0) -> int:
    """Provider calls answered once none is in flight (or ``timeout`` passed): after its
    only caller stopped, every call that caller started."""
    deadline = time.monotonic() + timeout
    while True:
        stats = httpx.get(f"{stack.simulator_url}/_sim/stats").json()
        if stats["in_flight"] == 0 or time.monotonic() > deadline:
            return stats["total_calls"] + stats["in_flight"]
        time.sleep(0.05)


def embedding_inputs(stack, model: str | None = None) -> int:
    """Embedding inputs the simulator received (OpenAI-style and Gemini), for one model or all."""
    counts = httpx.get(f"{stack.simulator_url}/_sim/stats").json().get("embeddings", {})
    if model is None:
        return sum(entry["inputs"] for entry in counts.values())
    return counts.get(model, {}).get("inputs", 0)


def simulate_rules(stack, **switches: bool) -> None:
    """Switch simulator request rules until its next reset, e.g.
    ``simulate_rules(stack, **{"anthropic.alternating_roles": True})`` (ids: GET /_sim/rules)."""
    httpx.put(f"{stack.simulator_url}/_sim/rules", json=switches).raise_for_status()
