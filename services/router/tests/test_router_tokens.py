"""Token counts for budgets: a real tokenizer, and estimates that never undercount."""

from __future__ import annotations

from modelbus_router.tokens import (
    HOSTED_OTHER_FACTOR,
    count_text,
    estimate_tokens,
    input_tokens_for,
)
from modelbus_schemas import ChatMessage, ContextBlock


def test_o200k_counts_match_the_reference_encoding():
    assert count_text("a " * 3000) == 3001          # chars / 4 said 1,500
    assert count_text("Hello, world! Summarise: Kafka is a log.") == 13
    assert count_text("") == 0


def test_special_token_text_is_counted_as_plain_text_not_refused():
    assert count_text("<|endoftext|>") > 1


def test_chat_framing_is_added_per_message_and_block():
    one = estimate_tokens([ChatMessage(role="user", content="hello")])
    two = estimate_tokens([ChatMessage(role="user", content="hello")] * 2)
    assert two - one == count_text("hello") + 3
    block = ContextBlock(title="doc", content="hello")
    assert estimate_tokens([ChatMessage(role="user", content="hello")], [block]) > one


def test_other_providers_are_estimated_high():
    assert input_tokens_for("openai", 1000) == 1000
    assert input_tokens_for("selfhosted", 1000) == 1000
    assert input_tokens_for("anthropic", 1000) == 1000 * HOSTED_OTHER_FACTOR
    assert input_tokens_for("gemini", 3) == 4  # rounded up
