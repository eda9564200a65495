"""The versioned price table: USD per million input and output tokens, per model
(embedding models: input tokens only)."""

from __future__ import annotations

PRICE_TABLE_VERSION = "2026-12-03"

# (input, output) USD per 1M tokens.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "text-embedding-ada-002": (0.10, 0.0),
    "gemini-embedding-001": (0.15, 0.0),
}


def cost_usd(model: str, input_tokens: int, output_tokens: int) -> float:
    """Cost of one call; self-hosted and unknown models cost 0 here (priced by capacity)."""
    price_in, price_out = PRICES.get(model, (0.0, 0.0))
    return round((input_tokens * price_in + output_tokens * price_out) / 1_000_000, 10)
