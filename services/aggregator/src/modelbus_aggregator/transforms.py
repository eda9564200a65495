"""Context transforms of chains: build a stage's input from earlier outputs. No I/O.

A stage names its ``inputs``: ``request`` (the original user message), ``previous`` (the
output of the stage before it) or the name of any earlier stage. The pieces are combined
by the stage's ``transform`` and cut to its ``token_budget`` (tokens are counted as
whitespace-separated words, the same unit the simulator and rough pre-checks use):

* ``none`` — the pieces as they are, one after another;
* ``merge`` — labelled sections (``## analyse``), lines repeated across pieces kept once;
* ``filter`` — only lines sharing a content word with the request or the instruction
  (blank and repeated lines dropped); a piece with no such line is kept whole;
* ``compress`` — each piece gets an equal share of the budget, keeping its head.

Whatever the transform, the result never exceeds the budget.
"""

from __future__ import annotations

import re

from modelbus_schemas import ChainStage, ChatMessage

_WORDS = re.compile(r"[a-z0-9]{4,}")
_TOKEN = re.compile(r"\S+")


def count_tokens(text: str) -> int:
    return len(text.split())


def truncate(text: str, budget: int | None) -> str:
    """The first ``budget`` tokens of ``text``, its line breaks kept."""
    if budget is None:
        return text
    for count, match in enumerate(_TOKEN.finditer(text), 1):
        if count == budget:
            return text[:match.end()]
    return text


def gather(stage: ChainStage, sources: dict[str, str]) -> list[tuple[str, str]]:
    return [(name, sources[name]) for name in stage.inputs if name in sources]


def build_input(stage: ChainStage, sources: dict[str, str]) -> str:
    pieces = gather(stage, sources)
    budget = stage.token_budget
    if stage.transform == "merge":
        text = _merge(pieces)
    elif stage.transform == "filter":
        text = _filter(pieces, sources.get("request", "") + " " + stage.instruction)
    elif stage.transform == "compress":
        text = _compress(pieces, budget)
    else:
        text = "\n\n".join(content for _, content in pieces)
    return truncate(text, budget)


def stage_messages(stage: ChainStage, sources: dict[str, str]) -> list[ChatMessage]:
    messages = [ChatMessage(role="system", content=stage.instruction)] if stage.instruction else []
    return messages + [ChatMessage(role="user", content=build_input(stage, sources) or "-")]


def _merge(pieces: list[tuple[str, str]]) -> str:
    seen: set[str] = set()
    sections = []
    for name, content in pieces:
        lines = []
        for line in content.splitlines():
            key = line.strip().casefold()
            if key and key in seen:
                continue
            seen.add(key)
            lines.append(line)
        sections.append(f"## {name}\n" + "\n".join(lines).strip())
    return "\n\n".join(sections)


def _filter(pieces: list[tuple[str, str]], focus: str) -> str:
    focus_words = set(_WORDS.findall(focus.casefold()))
    kept_pieces = []
    seen: set[str] = set()
    for _, content in pieces:
        lines = [ln for ln in content.splitlines() if ln.strip()]
        relevant = [ln for ln in lines if focus_words & set(_WORDS.findall(ln.casefold()))]
        unique = []
        for line in relevant or lines:
            key = line.strip().casefold()
            if key not in seen:
                seen.add(key)
                unique.append(line)
        kept_pieces.append("\n".join(unique))
    return "\n\n".join(p for p in kept_pieces if p)


def _compress(pieces: list[tuple[str, str]], budget: int | None) -> str:
    if not pieces:
        return ""
    share = max(1, budget // len(pieces)) if budget else None
    return "\n\n".join(truncate(" ".join(content.split()), share) for _, content in pieces)
