"""Secret-like strings: private keys, cloud and provider API keys, access tokens, JWTs,
connection strings with passwords. One set of shapes for every place that must not keep
them: the router's input screen, the audit store (masked before writing) and the logs.

Pure functions over ``str``. A finding names the kind and its position, never echoes the
value anywhere else: callers put only kinds and counts into errors and lineage. Patterns
follow the issuers' documented formats (AWS ``AKIA…``, GitHub ``ghp_…``/``github_pat_…``,
Slack ``xox?-``, Google ``AIza…``, Stripe ``sk_live_…``, OpenAI ``sk-…``/``sk-proj-…``,
Anthropic ``sk-ant-…``, PEM private-key armour, JWTs), URLs with a password
(``postgresql://user:pw@host``), bearer tokens and ``password=…``-style assignments.
A PEM block is masked from its BEGIN line to its END line (or to the end of the text when
the END line is missing).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

PRIVATE_KEY = "private_key"

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (PRIVATE_KEY, re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*\Z)", re.DOTALL)),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("anthropic_api_key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}")),
    ("openai_api_key", re.compile(r"\bsk-(?!ant-)(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{40,})")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("stripe_key", re.compile(r"\b(?:sk|rk)_live_[0-9A-Za-z]{16,}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("connection_string_password", re.compile(
        r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@]{1,256}:[^\s@/]{1,256}@[^\s]+")),
    ("bearer_token", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}")),
    ("credential_assignment", re.compile(
        r"(?i)\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token)"
        r"\s*[:=]\s*[\"']?[^\s\"']{8,}")),
)

KINDS: tuple[str, ...] = tuple(kind for kind, _ in _PATTERNS)


def find_secrets(texts: Iterable[str]) -> Counter[str]:
    """How many secrets of each kind the texts hold (a span counts for its first kind)."""
    return Counter(kind for text in texts for _, _, kind in _spans(text))


def _spans(text: str) -> list[tuple[int, int, str]]:
    taken: list[tuple[int, int, str]] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < e and s < end for s, e, _ in taken):
                continue
            taken.append((start, end, kind))
    return sorted(taken)


def mask_secrets(text: str) -> tuple[str, Counter[str]]:
    """``text`` with every secret-like span replaced by ``[secret:<kind>]``, and the counts."""
    spans = _spans(text)
    if not spans:
        return text, Counter()
    out, last = [], 0
    found: Counter[str] = Counter()
    for start, end, kind in spans:
        out += [text[last:start], f"[secret:{kind}]"]
        last = end
        found[kind] += 1
    out.append(text[last:])
    return "".join(out), found
