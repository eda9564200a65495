"""API keys of the query API: configured as SHA-256 digests with a role, never in clear.

Setting ``MODELBUS_AUDIT_API_KEYS`` (or the ``api_keys`` field of the audit settings) is a
comma- or newline-separated list of ``<sha256 hex of the key>:<role>``, roles ``compliance``
and ``ops``. Make a digest with ``printf %s "$KEY" | sha256sum``. A presented key is hashed and
looked up; the key itself is never stored, logged or echoed. Requests without a known key get
401; a known key whose role may not do what was asked gets 403.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from modelbus_audit.views import Role

_ENTRY = re.compile(r"^(?P<digest>[0-9a-fA-F]{64}):(?P<role>[a-z_]+)$")
MAX_KEY_CHARS = 512


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


class ApiKeys:
    def __init__(self, digests: dict[str, Role] | None = None) -> None:
        self._roles = {d.lower(): role for d, role in (digests or {}).items()}

    @classmethod
    def parse(cls, setting: str) -> ApiKeys:
        """Parse ``digest:role`` entries; a malformed entry is an error that names its position
        (never its content, which might be a key pasted by mistake)."""
        roles: dict[str, Role] = {}
        entries = [e.strip() for e in re.split(r"[,\n]", setting or "") if e.strip()]
        for index, entry in enumerate(entries, 1):
            match = _ENTRY.match(entry)
            if not match or match["role"] not in {r.value for r in Role}:
                raise ValueError(
                    f"audit API key entry #{index} is not '<sha256 hex>:<role>' with role one "
                    f"of {[r.value for r in Role]}"
                )
            roles[match["digest"].lower()] = Role(match["role"])
        return cls(roles)

    def __len__(self) -> int:
        return len(self._roles)

    def role_for(self, key: str | None) -> Role | None:
        if not key or len(key) > MAX_KEY_CHARS:
            return None
        digest = key_digest(key)
        for known, role in self._roles.items():
            if hmac.compare_digest(known, digest):
                return role
        return None

    def __repr__(self) -> str:  # never show digests either
        return f"ApiKeys({len(self)} keys)"
