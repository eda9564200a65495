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
from functools import lru_cache
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


@lru_cache(maxsize=4096)
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


def _redacted_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """One JSON object as :func:`redact` leaves it (its members are redacted already: the
    decoder builds inner objects first), made while decoding instead of by a second walk."""
    for key, _ in pairs:
        if is_secret_key(key):
            return {k: REDACTED if is_secret_key(k) else v for k, v in pairs}
    return dict(pairs)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float,
                            object_pairs_hook=_redacted_object)


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object with only finite numbers, or None (not JSON, or not an object)."""
    try:  # what json.loads does with bytes, with one decoder made once
        if isinstance(body, bytes | bytearray):
            body = body.decode(json.detect_encoding(body), "surrogatepass")
        parsed = _DECODER.decode(body)
        return parsed if isinstance(parsed, dict) else None  # redacted as it was decoded
    except (ValueError, RecursionError, TypeError):
        return None


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a payload key names a secret (cached: an event's keys are a small vocabulary)."""
    return SECRET_KEY_PATTERN.search(key) is not None


def redact(value: Any) -> Any:
    """A copy with the values of secret-looking keys replaced, at any depth."""
    if isinstance(value, dict):
        return {
            key: REDACTED if is_secret_key(key)
            else redact(item) if isinstance(item, dict | list) else item
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) if isinstance(item, dict | list) else item for item in value]
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
_CASED_TRIGGERS = r"-----BEGIN|AKIA|ASIA|sk-|gh[pousr]_|github_pat_|xox[abposr]-|AIza|_live_|eyJ|://"
_ANY_CASE_TRIGGERS = r"bearer|password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token"
SECRET_TRIGGERS = re.compile(f"{_CASED_TRIGGERS}|(?i:{_ANY_CASE_TRIGGERS})")
#: The two halves for ASCII text: the case-insensitive words searched in the lowered text
#: (several times faster than one case-insensitive pattern, and the same answer on ASCII).
_CASED = re.compile(_CASED_TRIGGERS)
_ANY_CASE = re.compile(_ANY_CASE_TRIGGERS)
#: The kinds of secret :data:`SECRET_TRIGGERS` is written for.
TRIGGERED_KINDS = frozenset({
    "private_key", "aws_access_key", "anthropic_api_key", "openai_api_key", "github_token",
    "slack_token", "google_api_key", "stripe_key", "jwt", "connection_string_password",
    "bearer_token", "credential_assignment"})
#: No secret shape matches fewer characters (a connection string ``ab://u:p@h``).
MIN_SECRET_CHARS = 10


def has_trigger(text: str) -> bool:
    """Whether :data:`SECRET_TRIGGERS` matches somewhere in ``text``."""
    if text.isascii():  # ASCII lowers to ASCII, position for position
        return _CASED.search(text) is not None or _ANY_CASE.search(text.lower()) is not None
    return SECRET_TRIGGERS.search(text) is not None


def mask_tree(value: Any, found: Counter | None = None) -> tuple[Any, Counter]:
    """``value`` (JSON-like: dicts, lists, strings) with every secret-like string masked, keys
    included, and the kinds found."""
    found = Counter() if found is None else found
    if isinstance(value, str):
        if len(value) < MIN_SECRET_CHARS or not has_trigger(value):
            return value, found
        masked, kinds = mask_secrets(value)
        found.update(kinds)
        return masked, found
    if isinstance(value, dict):
        return {mask_tree(k, found)[0]: mask_tree(v, found)[0] for k, v in value.items()}, found
    if isinstance(value, list):
        return [mask_tree(item, found)[0] for item in value], found
    return value, found


def json_may_hold_secret(body: bytes) -> bool:
    """False only when no string of the JSON document ``body`` (key or value) can match
    :data:`SECRET_TRIGGERS`, so :func:`mask_tree` of it would change nothing: ``body`` is
    UTF-8 with no NUL (so :func:`json.loads` reads it as UTF-8) and no backslash (every string
    in it is then a verbatim slice of the text), and the trigger matches nowhere in the text.
    One scan of the body instead of one per string; any doubt answers True."""
    try:
        text = body.decode("utf-8")
    except (UnicodeDecodeError, AttributeError):
        return True
    return "\\" in text or "\x00" in text or has_trigger(text)


def mask_strings(value: list[list[str]], found: Counter | None = None
                 ) -> tuple[list[list[str]], Counter]:
    """:func:`mask_tree` of a list of string lists (headers), with one trigger scan of all
    the strings joined (no trigger matches across a newline) when none holds a secret."""
    if has_trigger("\n".join(text for pair in value for text in pair)):
        return mask_tree(value, found)
    return [list(pair) for pair in value], Counter() if found is None else found


def masked_finding(found: Counter) -> list[str]:
    """The header recording what was masked (kinds and counts, never values)."""
    return [MASKED_HEADER, ",".join(f"{kind}={n}" for kind, n in sorted(found.items()))]
