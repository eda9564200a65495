"""Finding and redacting personal data in free text: e-mail addresses, payment card numbers
(Luhn-checked), IBANs (ISO 7064 mod-97 checked), national-ID-like numbers and phone numbers.

Used by the audit store before it keeps prompt and response text and by the router's and
aggregator's guardrails. Pure functions over ``str``; no I/O; every regex is precompiled and
free of nested unbounded repetition, so time stays linear in the text length.

Detection favours precision where a checksum exists (cards, IBANs). National ids are
matched by shape (the Finnish check character is not enforced: a mistyped id is still
personal data). Phones are matched by recognised shapes only -- ``+`` country code, ``00``
or trunk ``0`` prefix, ``(area)``, North-American 3-3-4 -- with a plausible digit count,
never inside a longer token, and not when the candidate is a date, an IP address, an
SSN-shaped number, the digit tail of a longer code (IBAN-like, tracking numbers) or a number
introduced as an invoice/order/reference number.

Kinds are tried in a fixed order (email, iban, card, national_id, phone); a later kind never
matches inside a span an earlier kind already claimed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

EMAIL = "email"
IBAN = "iban"
CARD = "card"
NATIONAL_ID = "national_id"
PHONE = "phone"
KINDS: tuple[str, ...] = (EMAIL, IBAN, CARD, NATIONAL_ID, PHONE)

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_NATIONAL_ID = re.compile(
    r"(?<![\w-])(?:"
    r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}"  # US SSN
    r"|[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]"  # UK National Insurance number
    r"|(?:0[1-9]|[12]\d|3[01])(?:0[1-9]|1[0-2])\d{2}[-+A-FU-Y]\d{3}[0-9A-Y]"  # Finnish HETU: DDMMYY
    r"|\d{6}[-+]\d{4}"  # Nordic / Korean style birth-date ids
    r"|\d{3}\.\d{3}\.\d{3}-\d{2}"  # Brazilian CPF
    r")(?![\w-])"
)
# Phone candidates come in four recognised shapes; a bare run of digit groups (order, lot,
# policy numbers, digit tails of other codes) is deliberately not one of them.
_PHONE = re.compile(
    r"""
    (?<![\w+./-])                                # not inside a longer token
    (?:
        \+[1-9]\d{0,14}                          # international: +country code (or compact)
          (?:[ .-]?\(\d{1,4}\)[ .-]?\d{1,6})?    #   optional (area) or (0)
          (?:[ .-]\d{1,6}){0,6}
      | \(\d{2,5}\)[ .-]?\d{1,6}(?:[ .-]\d{1,6}){0,5}          # (area) subscriber
      | (?:00[1-9]\d{0,2}|0[1-9]\d{0,9})(?:[ .-]\d{1,6}){0,5}  # 00 prefix / trunk 0
      | [2-9]\d{2}([-. ])[2-9]\d{2}\1\d{4}                     # North American 3-3-4
      | [2-9]\d{2}[2-9]\d{6}                                   # ... or written compact
    )
    (?![\w+]|[.:/-]\w)                           # and not followed by more of a token
    """,
    re.VERBOSE,
)
# Shapes that are never phone numbers even when they fit a phone pattern.
_NOT_PHONE = re.compile(
    r"\d{1,4}([./-])\d{1,2}\1\d{1,4}(?:[ T]\d{1,2})?"  # dates (and a date + hour)
    r"|\d{1,3}(?:\.\d{1,3}){3}"  # IPv4 addresses
    r"|\d{3}-\d{2}-\d{4}"  # SSN-shaped (valid ones are national ids, the rest are not phones)
)
# Words that introduce a number which is some other identifier, e.g. "Invoice 0123 4567 89".
_NOT_PHONE_CUES = frozenset({
    "invoice", "inv", "order", "ref", "reference", "batch", "lot", "policy", "tracking",
    "serial", "sku", "part", "ticket", "isbn", "version", "build", "commit", "account",
    "acct", "iban",
})
# "<word>", "<word>:", "<word> no.", "<word> number #" right before the candidate.
_PRECEDING_WORD = re.compile(r"([A-Za-z]+)(?: (?:no\.|nr\.|number))?[:#]? ?#?\Z")
_CODE_TOKEN = re.compile(r"[A-Z0-9]+")
_DIGIT_GROUP = re.compile(r"\d+")
_MAX_CODE_TOKEN = 34
_IBAN_LENGTH = (15, 34)


@dataclass(frozen=True, slots=True)
class PiiMatch:
    kind: str
    start: int
    end: int
    text: str


def luhn_ok(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check (payment card numbers)."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    """Whether ``candidate`` (spaces allowed) is an IBAN with a valid mod-97 check."""
    compact = candidate.replace(" ", "").upper()
    if not (_IBAN_LENGTH[0] <= len(compact) <= _IBAN_LENGTH[1]) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def _card(match: str) -> bool:
    digits = re.sub(r"[ -]", "", match)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _continues_code(text: str, start: int) -> bool:
    """Whether the candidate at ``start`` is the tail of a longer code written in groups
    ("GB47 NWBK 0420 …", "1Z 999 AA1 01 2345 …", "12 06 12 34 …"): walking back over the
    space-separated upper-case tokens right before it, one holds a digit."""
    position = start
    for _ in range(8):
        if position < 2 or text[position - 1] != " ":
            return False
        window_start = max(0, position - 1 - _MAX_CODE_TOKEN)
        space = text.rfind(" ", window_start, position - 1)
        if space < 0 and window_start > 0:
            return False  # a token this long is no grouped code
        token_start = space + 1
        token = text[token_start : position - 1]
        if not _CODE_TOKEN.fullmatch(token):
            return False
        if any(char.isdigit() for char in token):
            return True
        position = token_start
    return False


def _introduced_as_other_number(text: str, start: int) -> bool:
    cue = _PRECEDING_WORD.search(text, max(0, start - 40), start)
    return cue is not None and cue.group(1).lower() in _NOT_PHONE_CUES


def _phone(text: str, match: re.Match[str]) -> bool:
    candidate = match.group()
    digits = sum(char.isdigit() for char in candidate)
    if _NOT_PHONE.fullmatch(candidate):
        return False
    if candidate.startswith("+"):
        return 7 <= digits <= 15
    if not 9 <= digits <= 15 or (candidate.isdigit() and not 10 <= digits <= 11):
        return False
    groups = _DIGIT_GROUP.findall(candidate)
    if len(groups) > 1 and all(group.endswith("00") for group in groups):
        return False  # round numbers such as "200-300-4000" are a range, not a line
    start = match.start()
    return not _continues_code(text, start) and not _introduced_as_other_number(text, start)


_Check = Callable[[str, re.Match[str]], bool]


def _whole(check: Callable[[str], bool]) -> _Check:
    """A check of the matched text alone, in the (text, match) shape the detectors use."""
    return lambda _text, match: check(match.group())


_DETECTORS: tuple[tuple[str, re.Pattern[str], _Check | None], ...] = (
    (EMAIL, _EMAIL, None),
    (IBAN, _IBAN, _whole(iban_ok)),
    (CARD, _CARD, _whole(_card)),
    (NATIONAL_ID, _NATIONAL_ID, None),
    (PHONE, _PHONE, _phone),
)


def find_pii(text: str, kinds: tuple[str, ...] = KINDS) -> list[PiiMatch]:
    """Every personal-data span in ``text`` of the given kinds, by position, never overlapping."""
    taken: list[PiiMatch] = []
    for kind, pattern, check in _DETECTORS:
        if kind not in kinds:
            continue
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < other.end and other.start < end for other in taken):
                continue
            if check is None or check(text, match):
                taken.append(PiiMatch(kind, start, end, match.group()))
    return sorted(taken, key=lambda m: m.start)


def default_placeholder(kind: str) -> str:
    return f"[{kind.upper()}]"


def redact_pii(
    text: str,
    kinds: tuple[str, ...] = KINDS,
    placeholder: Callable[[str], str] = default_placeholder,
) -> str:
    """``text`` with every personal-data span replaced by a placeholder such as ``[EMAIL]``."""
    matches = find_pii(text, kinds)
    if not matches:
        return text
    out, last = [], 0
    for match in matches:
        out += [text[last : match.start], placeholder(match.kind)]
        last = match.end
    out.append(text[last:])
    return "".join(out)


def contains_pii(text: str, kinds: tuple[str, ...] = KINDS) -> bool:
    return bool(find_pii(text, kinds))
