"""Making untrusted message parts safe to store: secret-free headers, bounded clean text,
finite JSON, short escaped excerpts of bodies that are not JSON, and no secret-like string
anywhere (:func:`mask_tree`, with the shapes of :mod:`modelbus_runtime.secret_scan`).

Everything here is total: it returns a value for any input and never raises, because the
audit consumer sees poison messages and dead-letter records as well as good events.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from typing import Any

from modelbus_runtime.secret_scan import mask_secrets

#: Header names that look like they carry credentials; such headers are never stored.
SECRET_HEADER_WORDS = ("authorization", "api-key", "api_key", "apikey", "token", "secret",
                       "password", "cookie")
#: Payload keys whose values are replaced by REDACTED (narrower than for headers, because
#: payloads legitimately hold ``max_tokens`` / ``input_tokens``).
SECRET_KEY_PATTERN = re.compile(
    r"(authorization|api[-_]?key|passw(or)?d|secret|cookie|bearer"
    r"|(^|[-_])(access|refresh|auth|id|session)[-_]?token$|^token$)",
    re.IGNORECASE,
)
REDACTED = "[redacted]"
EXCERPT_BYTES = 256
HEADER_VALUE_CHARS = 1024
MAX_HEADERS = 64


def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_HEADER_WORDS)


def clean_text(value: str, limit: int) -> str:
    """A string PostgreSQL text accepts (no NUL, no lone surrogates), at most ``limit`` chars."""
    value = value[:limit]
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def text_or_none(value: Any, limit: int = 256) -> str | None:
    """A scalar payload field as bounded text; containers and other shapes give None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return clean_text(value, limit) if value else None
    if isinstance(value, int | float):
        return clean_text(str(value), limit)
    return None


def int_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31:
        return value
    return None


def float_or_none(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def decode_bytes(value: Any, limit: int) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return clean_text(bytes(value[: limit * 4]).decode("utf-8", "replace"), limit)
    if value is None:
        return ""
    return clean_text(str(value), limit)


def safe_headers(headers: Any) -> list[list[str]]:
    """Decoded ``[name, value]`` pairs without secret-looking headers; malformed items skipped."""
    out: list[list[str]] = []
    try:
        items = list(headers or ())
    except Exception:  # noqa: BLE001 - headers of any shape must not stop the audit
        return out
    for item in items:
        try:
            name, value = item
        except Exception:  # noqa: BLE001, S112 - a malformed header is skipped, not fatal
            continue
        name_text = decode_bytes(name, 256)
        if not name_text or is_secret_header(name_text):
            continue
        out.append([name_text, decode_bytes(value, HEADER_VALUE_CHARS)])
        if len(out) >= MAX_HEADERS:
            break
    return out


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("number out of range")
    return number


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object with only finite numbers, or None (not JSON, or not an object)."""
    try:
        parsed = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
        if not isinstance(parsed, dict):
            return None
        return redact(parsed)
    except (ValueError, RecursionError, TypeError):
        return None


def redact(value: Any) -> Any:
    """A copy with the values of secret-looking keys replaced, at any depth."""
    if isinstance(value, dict):
        return {
            key: REDACTED if SECRET_KEY_PATTERN.search(key) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def excerpt(body: bytes, limit: int = EXCERPT_BYTES) -> str:
    """The first ``limit`` bytes as printable text; control chars and bad bytes escaped."""
    text = body[:limit].decode("utf-8", "backslashreplace")
    out = [
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    ]
    suffix = f"…(+{len(body) - limit} bytes)" if len(body) > limit else ""
    return clean_text("".join(out), limit * 4 + 32) + suffix


#: The header a stored row carries when secret-like strings were masked out of it.
MASKED_HEADER = "modelbus_audit_secrets_masked"


#: What every secret shape of :mod:`modelbus_runtime.secret_scan` contains, in one pattern: a
#: string without any of these cannot hold a secret, and skips the dozen full scans (most
#: strings of an event — keys, ids, times, short values — are skipped so). A test checks that
#: this covers every kind the scanner knows and that each of its examples is caught.
SECRET_TRIGGERS = re.compile(
    r"-----BEGIN|AKIA|ASIA|sk-|gh[pousr]_|github_pat_|xox[abposr]-|AIza|_live_|eyJ|://"
    r"|(?i:bearer|password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token)")
#: The kinds of secret :data:`SECRET_TRIGGERS` is written for.
TRIGGERED_KINDS = frozenset({
    "private_key", "aws_access_key", "anthropic_api_key", "openai_api_key", "github_token",
    "slack_token", "google_api_key", "stripe_key", "jwt", "connection_string_password",
    "bearer_token", "credential_assignment"})
#: No secret shape matches fewer characters (a connection string ``ab://u:p@h``).
MIN_SECRET_CHARS = 10


def mask_tree(value: Any, found: Counter | None = None) -> tuple[Any, Counter]:
    """``value`` (JSON-like: dicts, lists, strings) with every secret-like string masked, keys
    included, and the kinds found."""
    found = Counter() if found is None else found
    if isinstance(value, str):
        if len(value) < MIN_SECRET_CHARS or not SECRET_TRIGGERS.search(value):
            return value, found
        masked, kinds = mask_secrets(value)
        found.update(kinds)
        return masked, found
    if isinstance(value, dict):
        return {mask_tree(k, found)[0]: mask_tree(v, found)[0] for k, v in value.items()}, found
    if isinstance(value, list):
        return [mask_tree(item, found)[0] for item in value], found
    return value, found


def masked_finding(found: Counter) -> list[str]:
    """The header recording what was masked (kinds and counts, never values)."""
    return [MASKED_HEADER, ",".join(f"{kind}={n}" for kind, n in sorted(found.items()))]
