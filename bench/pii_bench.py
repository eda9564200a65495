"""Redaction recall and precision of the shared personal-data detector
(``modelbus_runtime.pii``, which the router's PII guardrail uses) on a labelled set.

    uv run python bench/pii_bench.py [--data bench/data/pii_labelled.jsonl] [--show-errors]

Each line of the data set: ``{"text": ..., "spans": [{"kind": ..., "value": ...}], "tag": ...}``
— the personal data in the text (kind and exact value), none for look-alikes (order numbers
failing Luhn, IBAN-like strings with wrong check digits, dates, versions, other numbers).

A labelled span is *found* when a detected span of the same kind overlaps it; a detected
span is *correct* when it overlaps a labelled span of its kind. Per kind:
recall = found / labelled, precision = correct / detected. Also printed: false positives
per look-alike tag and the time per string. Goal (issue 12): recall ≥ 0.99 on e-mail, card,
IBAN, national id and phone, precision ≥ 0.95.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from modelbus_runtime.pii import KINDS, find_pii

DEFAULT_DATA = Path(__file__).with_name("data") / "pii_labelled.jsonl"
RECALL_GOAL, PRECISION_GOAL = 0.99, 0.95


def _spans(text: str, labels: list[dict]) -> list[tuple[str, int, int]]:
    out, cursor = [], {}
    for label in labels:
        start = text.index(label["value"], cursor.get(label["value"], 0))
        cursor[label["value"]] = start + 1
        out.append((label["kind"], start, start + len(label["value"])))
    return out


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def evaluate(rows: list[dict], show_errors: bool = False):
    labelled, found, detected, correct = Counter(), Counter(), Counter(), Counter()
    false_by_tag: Counter[str] = Counter()
    errors: list[str] = []
    started = time.perf_counter()
    matches_per_row = [find_pii(row["text"]) for row in rows]
    elapsed = time.perf_counter() - started
    for row, matches in zip(rows, matches_per_row, strict=True):
        truth = _spans(row["text"], row["spans"])
        for kind, start, end in truth:
            labelled[kind] += 1
            if any(m.kind == kind and _overlap((m.start, m.end), (start, end)) for m in matches):
                found[kind] += 1
            else:
                errors.append(f"MISSED {kind:<11} {row['text']!r} -> "
                              f"{[(m.kind, m.text) for m in matches]}")
        for m in matches:
            detected[m.kind] += 1
            if any(k == m.kind and _overlap((m.start, m.end), (s, e)) for k, s, e in truth):
                correct[m.kind] += 1
            else:
                false_by_tag[row["tag"]] += 1
                errors.append(f"FALSE  {m.kind:<11} {m.text!r} in {row['text']!r}")
    return labelled, found, detected, correct, false_by_tag, errors, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    labelled, found, detected, correct, false_by_tag, errors, elapsed = evaluate(rows)
    lookalikes = sum(1 for r in rows if not r["spans"])
    print(f"{len(rows)} strings ({len(rows) - lookalikes} with personal data, {lookalikes} "
          f"look-alikes), {elapsed / len(rows) * 1e6:.1f} µs per string\n")
    print(f"{'kind':<12} {'labelled':>8} {'found':>6} {'recall':>7} {'detected':>9} "
          f"{'correct':>8} {'precision':>9}  goal")
    for kind in KINDS:
        recall = found[kind] / labelled[kind] if labelled[kind] else float("nan")
        precision = correct[kind] / detected[kind] if detected[kind] else float("nan")
        met = recall >= RECALL_GOAL and (precision >= PRECISION_GOAL or not detected[kind])
        print(f"{kind:<12} {labelled[kind]:>8} {found[kind]:>6} {recall:>7.3f} "
              f"{detected[kind]:>9} {correct[kind]:>8} {precision:>9.3f}  "
              f"{'met' if met else 'MISSED'}")
    total_l, total_f = sum(labelled.values()), sum(found.values())
    total_d, total_c = sum(detected.values()), sum(correct.values())
    print(f"{'all':<12} {total_l:>8} {total_f:>6} {total_f / total_l:>7.3f} {total_d:>9} "
          f"{total_c:>8} {total_c / max(total_d, 1):>9.3f}")
    if false_by_tag:
        print("\nfalse positives by tag: " + ", ".join(
            f"{tag} {n}" for tag, n in false_by_tag.most_common()))
    if args.show_errors and errors:
        print("\n" + "\n".join(errors))


if __name__ == "__main__":
    main()
