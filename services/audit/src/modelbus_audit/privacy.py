"""What of a message's text the audit store may keep, and what each reader role may see.

Before storage (:func:`protect`), by :class:`TextMode`:

- ``full``: prompt and response text kept as sent;
- ``redact`` (the default): personal data in prompt and response text, and in other free text
  (error messages, metadata values, DLQ error text, excerpts of bodies that are not JSON),
  replaced by placeholders such as ``[EMAIL]`` (:mod:`modelbus_runtime.pii`);
- ``hashes``: prompt and response text replaced by ``sha256:<hex>`` of the text (proves what
  was sent when the text is produced later, stores none of it); other free text redacted as
  above; excerpts of non-JSON bodies dropped (``body_sha256`` stays).

"Prompt and response text" are the string values under the keys in :data:`TEXT_KEYS` at any
depth of the payload (``messages[].content``, ``context[].content``, a result's ``text``, a
response's ``output``, a task copy inside ``origin``). The lineage columns (tenant, team, user,
model, …) are read from the payload before this runs and are kept: they are who-did-what
metadata, not content.

For readers (:func:`metadata_view`): role ``ops`` sees payloads with the text keys removed and
no body excerpts; role ``compliance`` sees what was stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from enum import StrEnum
from typing import Any

from modelbus_runtime.pii import KINDS, redact_pii

from modelbus_audit.record import AuditRecord

#: Keys whose string values are prompt or response text.
TEXT_KEYS = frozenset({"content", "text", "output"})
#: Keys whose string values are other free text (kept for ops, but PII-redacted).
FREE_TEXT_KEYS = frozenset({"message", "title", "judge_prompt", "instruction"})
#: Keys whose dict values are free-form (every string value PII-redacted).
FREE_FORM_KEYS = frozenset({"metadata"})


class TextMode(StrEnum):
    FULL = "full"
    REDACT = "redact"
    HASHES = "hashes"


class PrivacyPolicy:
    """How text is stored; built once from settings, applied to every record."""

    def __init__(self, mode: TextMode | str = TextMode.REDACT, kinds: tuple[str, ...] = KINDS):
        self.mode = TextMode(mode)
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {list(KINDS)}")
        self.kinds = tuple(kinds)

    def free_text(self, value: str) -> str:
        return value if self.mode is TextMode.FULL else redact_pii(value, self.kinds)

    def prompt_text(self, value: str) -> str:
        if self.mode is TextMode.HASHES:
            return "sha256:" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()
        return self.free_text(value)


def protect(record: AuditRecord, policy: PrivacyPolicy) -> AuditRecord:
    """``record`` as the store may keep it under ``policy``."""
    if policy.mode is TextMode.FULL:
        return record
    payload = _walk(record.payload, policy, None) if record.payload is not None else None
    excerpt = record.body_excerpt
    if excerpt is not None:
        excerpt = None if policy.mode is TextMode.HASHES else policy.free_text(excerpt)
    dlq_error = policy.free_text(record.dlq_error) if record.dlq_error else record.dlq_error
    return replace(record, payload=payload, body_excerpt=excerpt, dlq_error=dlq_error)


def _walk(value: Any, policy: PrivacyPolicy, key: str | None) -> Any:
    """A copy of ``value`` (found under ``key``) with its text protected. Scalars are handled
    in the loops, not by a call each: most of an event's values are ids, numbers and flags."""
    if isinstance(value, dict):
        free_form = key in FREE_FORM_KEYS
        out = {}
        for k, v in value.items():
            if isinstance(v, str):
                out[k] = (policy.free_text(v) if free_form or k in FREE_TEXT_KEYS
                          else policy.prompt_text(v) if k in TEXT_KEYS else v)
            elif isinstance(v, dict | list):
                out[k] = _walk(v, policy, k)
            else:
                out[k] = v
        return out
    if isinstance(value, list):
        return [_text(item, policy, key) if isinstance(item, str)
                else _walk(item, policy, key) if isinstance(item, dict | list) else item
                for item in value]
    if isinstance(value, str):
        return _text(value, policy, key)
    return value


def _text(value: str, policy: PrivacyPolicy, key: str | None) -> str:
    if key in TEXT_KEYS:
        return policy.prompt_text(value)
    if key in FREE_TEXT_KEYS:
        return policy.free_text(value)
    return value


def strip_text(value: Any, key: str | None = None) -> Any:
    """A copy of a payload without prompt and response text (the ``ops`` view)."""
    if isinstance(value, dict):
        return {k: strip_text(v, k) for k, v in value.items() if k not in TEXT_KEYS}
    if isinstance(value, list):
        return [strip_text(item, key) for item in value]
    return value
