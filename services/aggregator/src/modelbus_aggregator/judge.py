"""The judge: prompts for a judge model and how its verdict is read. No I/O.

Two uses, one more LLM call each, routed like any task:

* ensemble ``judge`` strategy — the judge sees the question and the numbered candidates
  and answers with the number of the best one (:func:`read_choice`: the first integer in
  range; anything else falls back to part order);
* cascade ``judge`` check — the judge sees the question and one answer and says PASS or
  FAIL, or gives a score compared with the check's threshold (:func:`read_pass`).
"""

from __future__ import annotations

import re

from modelbus_schemas import ChatMessage

ENSEMBLE_PROMPT = (
    "You are a strict judge. Read the question and the numbered candidate answers. "
    "Reply with only the number of the best answer."
)
CHECK_PROMPT = (
    "You are a strict reviewer. Read the question and the answer. Reply PASS if the answer "
    "is correct and complete, otherwise FAIL."
)
_CANDIDATE = re.compile(r"^Candidate (\d+) \(part (\d+)\):$", re.MULTILINE)
_INT = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_WORD = re.compile(r"[a-z]+")
PASS_WORDS = {"pass", "passed", "yes", "accept", "accepted", "good", "correct", "ok"}
FAIL_WORDS = {"fail", "failed", "no", "reject", "rejected", "bad", "incorrect", "wrong"}


def question_of(messages: list[ChatMessage]) -> str:
    users = [m.text for m in messages if m.role == "user"]
    return users[-1] if users else (messages[-1].text if messages else "")


def ensemble_messages(question: str, candidates: list[tuple[int, str]],
                      prompt: str | None = None) -> list[ChatMessage]:
    """``candidates`` are (part id, answer); the part ids are written into the prompt so a
    verdict maps back to parts even if more parts arrive while the judge thinks."""
    listing = "\n\n".join(f"Candidate {i} (part {part}):\n{text}"
                          for i, (part, text) in enumerate(candidates, 1))
    return [
        ChatMessage(role="system", content=prompt or ENSEMBLE_PROMPT),
        ChatMessage(role="user", content=f"Question:\n{question}\n\n{listing}"),
    ]


def listed_parts(messages: list[ChatMessage]) -> list[int]:
    """The part ids of the candidates in a judge prompt, in candidate order."""
    found = _CANDIDATE.findall(messages[-1].text) if messages else []
    return [int(part) for _, part in sorted(found, key=lambda m: int(m[0]))]


def check_messages(question: str, answer: str, prompt: str | None) -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content=prompt or CHECK_PROMPT),
        ChatMessage(role="user", content=f"Question:\n{question}\n\nAnswer:\n{answer}"),
    ]


def read_choice(verdict: str | None, candidates: int) -> int | None:
    """0-based index of the chosen candidate, or None when the verdict names none."""
    for match in _INT.finditer(verdict or ""):
        number = int(match.group())
        if 1 <= number <= candidates:
            return number - 1
    return None


def read_pass(verdict: str | None, threshold: float | None) -> bool:
    """PASS/FAIL words decide; else a number: scores above 1 are read on a 0–10 scale."""
    text = (verdict or "").casefold()
    for word in _WORD.findall(text):
        if word in PASS_WORDS:
            return True
        if word in FAIL_WORDS:
            return False
    number = _NUMBER.search(text)
    if number is None:
        return False
    score = float(number.group())
    if score > 1:
        score /= 10
    return score >= (threshold if threshold is not None else 0.5)
