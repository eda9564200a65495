"""Ensemble strategies: how the answers of N parallel parts become one output.

Pure functions over the parts' results, no I/O. Every strategy sees the successful parts
in part order (= policy order), so ties always break the same way:

* ``first_success`` — the first successful part answers (the aggregator responds as soon
  as one succeeds; if several are already stored, the lowest part id).
* ``majority`` — vote over normalised answers (case, whitespace, trailing punctuation and
  quotes ignored; tool calls compared as canonical JSON of name + arguments, in any order;
  JSON answers as canonical JSON); the biggest group wins, a tie goes to the group holding
  the earliest part; the output is that part's original answer.
* ``all`` — every successful answer, labelled with its model, in part order.
* ``best_score`` — the highest score by the validator ``CheckSpec`` if the policy gives
  one (pass/fail, or the confidence for ``min_confidence``), then by confidence; ties by
  part order.
* ``judge`` — the judge model names the best candidate (:mod:`modelbus_aggregator.judge`).

:func:`is_ready` says when enough parts arrived to decide without waiting for more.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelbus_schemas import CheckSpec, EnsembleSpec, ResultEvent

from modelbus_aggregator.answers import answer_key
from modelbus_aggregator.checks import run_check


@dataclass(frozen=True)
class Pick:
    """The chosen output and the parts that gave it (``None``: the answer is tool calls)."""

    output: str | None
    winners: list[ResultEvent]


def label(result: ResultEvent) -> str:
    return f"{result.provider}/{result.response_model or result.model}"


def is_ready(spec: EnsembleSpec, arrived: list[ResultEvent], total: int) -> bool:
    """Enough parts to decide: all arrived, the quorum of successes reached, or (for
    first_success) one success."""
    ok = sum(1 for r in arrived if r.status == "ok")
    if len(arrived) >= total:
        return True
    if spec.strategy == "first_success":
        return ok >= 1
    return ok >= min(spec.quorum or total, total)


def first_success(ok: list[ResultEvent]) -> Pick:
    return Pick(ok[0].text, [ok[0]])


def majority(ok: list[ResultEvent]) -> Pick:
    groups: dict[str, list[ResultEvent]] = {}
    for result in ok:  # dicts keep insertion order: the first group holds the earliest part
        groups.setdefault(answer_key(result), []).append(result)
    winners = max(groups.values(), key=len)  # max keeps the first of equal groups
    return Pick(winners[0].text, winners)


def merge_all(ok: list[ResultEvent]) -> Pick:
    sections = [f"[{label(r)}]\n{(r.text or '').strip()}" for r in ok]
    return Pick("\n\n".join(sections), list(ok))


def score_of(result: ResultEvent, validator: CheckSpec | None) -> tuple[float, float]:
    confidence = result.confidence if result.confidence is not None else 0.0
    if validator is None:
        return (confidence, 0.0)
    outcome = run_check(validator, result)
    return (outcome.score if outcome else 0.0, confidence)


def best_score(ok: list[ResultEvent], validator: CheckSpec | None) -> Pick:
    best = ok[0]
    best_key = score_of(best, validator)
    for result in ok[1:]:
        key = score_of(result, validator)
        if key > best_key:  # strictly better only: ties stay with the earlier part
            best, best_key = result, key
    return Pick(best.text, [best])


def choose(spec: EnsembleSpec, ok: list[ResultEvent]) -> Pick:
    """Apply a non-judge strategy (``judge`` falls back to part order here)."""
    if spec.strategy == "majority":
        return majority(ok)
    if spec.strategy == "all":
        return merge_all(ok)
    if spec.strategy == "best_score":
        return best_score(ok, spec.score)
    return first_success(ok)
