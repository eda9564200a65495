"""What an answer *is*, for comparing and showing it: text, tool calls or a JSON value.

Two answers are the same when their keys match: tool calls as canonical JSON of name and
arguments (in any order, ids ignored), JSON answers as canonical JSON, text normalised (case,
whitespace, trailing punctuation and quotes ignored).
"""

from __future__ import annotations

import json
import re

from modelbus_schemas import ResultEvent

_SPACE = re.compile(r"\s+")
_EDGE = " \t\n.!?;:,\"'`*_()[]{}"


def normalise(text: str) -> str:
    return _SPACE.sub(" ", text.casefold()).strip(_EDGE)


def answer_key(result: ResultEvent) -> str:
    """What two answers must share to count as the same answer."""
    if result.tool_calls:
        return "tools:" + "|".join(sorted(call.canonical() for call in result.tool_calls))
    if result.parsed is not None:
        return "json:" + json.dumps(result.parsed, sort_keys=True, separators=(",", ":"))
    return "text:" + normalise(result.text or "")


def answer_text(result: ResultEvent) -> str:
    """An answer as a judge reads it: the text, or the tool calls it asks for."""
    if result.tool_calls:
        calls = "\n".join(call.canonical() for call in result.tool_calls)
        return f"{result.text or ''}\n[tool calls]\n{calls}".strip()
    return result.text or ""
