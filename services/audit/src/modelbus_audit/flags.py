"""The flags a stored row can carry, and how they are stored (sorted, comma-separated).

Kept apart from :mod:`modelbus_audit.identity` (which decodes events with the contract's
models) so reading the store never imports the event models.
"""

from __future__ import annotations

UNDECODED = "undecoded"
UNAUTHENTICATED = "unauthenticated"
CONFLICT = "conflict"
#: Flags that keep a row out of a request's lineage as a genuine step.
FLAGS = (CONFLICT, UNAUTHENTICATED, UNDECODED)


def join_flags(*flags: str | None) -> str | None:
    """Flags as stored: sorted, comma-separated, None when there are none."""
    present = sorted({f for f in flags if f})
    return ",".join(present) if present else None


def flag_set(stored: str | None) -> frozenset[str]:
    return frozenset(f for f in (stored or "").split(",") if f)
