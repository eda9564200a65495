"""Input token estimate for the context-window pre-check and budget reservations.

No provider tokenizer is exact for every other provider, so the estimate errs high: about
one token per 4 characters (English averages ~4.0-4.5 for GPT/Claude tokenizers), plus a
per-message framing overhead. The same estimate is used for every model of a decision, so
rejections are consistent and reproducible from the decision record.
"""

from __future__ import annotations

from collections.abc import Iterable

from modelbus_schemas import ChatMessage, ContextBlock

CHARS_PER_TOKEN = 4
PER_MESSAGE_OVERHEAD = 4


def estimate_tokens(messages: Iterable[ChatMessage], context: Iterable[ContextBlock] = ()) -> int:
    total = 0
    for message in messages:
        total += -(-len(message.content) // CHARS_PER_TOKEN) + PER_MESSAGE_OVERHEAD
    for block in context:
        total += -(-(len(block.content) + len(block.title)) // CHARS_PER_TOKEN)
        total += PER_MESSAGE_OVERHEAD
    return total
