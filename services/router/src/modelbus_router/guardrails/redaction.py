"""Reversible redaction of personal data with numbered placeholders (``[CARD_1]``).

Detection is the shared detector (:func:`modelbus_runtime.pii.find_pii`). The same value
gets the same placeholder everywhere in one request (messages and context), so a model can
still tell two e-mail addresses apart and refer to them. :class:`Redactor` collects the
placeholder → value map; :func:`restore` puts values back into a text for the caller.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from modelbus_runtime.pii import find_pii


@dataclass
class Redactor:
    kinds: tuple[str, ...]
    mapping: dict[str, str] = field(default_factory=dict)  # placeholder → value
    counts: Counter[str] = field(default_factory=Counter)  # kind → spans redacted
    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    _numbers: Counter[str] = field(default_factory=Counter)

    def redact(self, text: str) -> str:
        matches = find_pii(text, self.kinds)
        if not matches:
            return text
        out, last = [], 0
        for match in matches:
            out += [text[last:match.start], self._placeholder(match.kind, match.text)]
            last = match.end
            self.counts[match.kind] += 1
        out.append(text[last:])
        return "".join(out)

    def _placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self._by_value:
            self._numbers[kind] += 1
            placeholder = f"[{kind.upper()}_{self._numbers[kind]}]"
            self._by_value[key] = placeholder
            self.mapping[placeholder] = value
        return self._by_value[key]


def restore(text: str, mapping: dict[str, str]) -> str:
    """``text`` with every known placeholder replaced by its value."""
    for placeholder, value in mapping.items():
        if placeholder in text:
            text = text.replace(placeholder, value)
    return text
