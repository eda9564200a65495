"""Every request the contract allows and a provider's API would refuse as sent (each row of
the table in docs/providers.md) is made valid on the way and answered: the simulator applies
the providers' published rules, so a request the worker did not normalise would come back
as a terminal 400."""

from __future__ import annotations

import pytest

from tests.surface.test_surface_kafka import ask

pytestmark = pytest.mark.e2e

USER = {"role": "user", "content": "Summarise: Kafka is a log."}
ROWS = {
    "five stop strings": ({"messages": [USER], "params": {"stop": ["a", "b", "c", "d", "e"]}},
                          ["openai", "selfhosted"]),
    "six stop sequences": ({"messages": [USER],
                            "params": {"stop": ["a", "b", "c", "d", "e", "f"]}}, ["gemini"]),
    "temperature on a reasoning model": ({"messages": [USER],
                                          "params": {"temperature": 0.2, "max_tokens": 50}},
                                         ["reasoning"]),
    "starts with an assistant turn": ({"messages": [
        {"role": "assistant", "content": "Hello, how can I help?"}, USER]}, ["anthropic"]),
    "two user turns in a row": ({"messages": [USER, {"role": "user", "content": "Briefly."}]},
                                ["anthropic", "gemini"]),
    "only a system message": ({"messages": [{"role": "system", "content": "Say hi."}]},
                              ["anthropic", "gemini"]),
    "an empty content": ({"messages": [{"role": "user", "content": ""}, USER]},
                         ["anthropic", "gemini"]),
}
CASES = [pytest.param(body, target, id=f"{row}-{target}")
         for row, (body, targets) in ROWS.items() for target in targets]


@pytest.mark.parametrize(("body", "target"), CASES)
async def test_a_contract_valid_request_is_made_valid_for_the_provider(surface_stack, body,
                                                                        target):
    task = "chat-reasoning" if target == "reasoning" else f"chat-{target}"
    response = await ask(surface_stack, {"task": task, **body})
    assert response["status"] == "ok", response.get("error")
    assert response["output"]
    assert [p["status"] for p in response["parts"]] == ["ok"]
