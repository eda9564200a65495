"""API keys → caller identity. Keys are stored only as sha256 hex digests.

Entries come from ``MODELBUS_API_KEYS`` (JSON) and/or a YAML/JSON file
(``MODELBUS_API_KEYS_FILE``: a list of entries, or ``{"keys": [...]}``). A presented key is
hashed and looked up; the key itself is never stored, logged or put on an event. A key is
named in logs and metrics by its *key id*: the first 12 hex digits of its digest, which
identify the configured entry without revealing the key.
``python -m modelbus_gateway.auth <key>`` prints the digest to configure.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from modelbus_schemas import Caller
from pydantic import BaseModel, ConfigDict, Field


class ApiKeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    tenant: str = Field(min_length=1, max_length=128)
    team: str | None = Field(default=None, max_length=128)
    user: str | None = Field(default=None, max_length=256)
    requests_per_min: int | None = Field(
        default=None, ge=0, description="this key's rate limit (0: unlimited); default: "
        "the gateway's key_requests_per_min")


@dataclass(frozen=True)
class KeyMatch:
    """A presented key that is configured: who calls, and under which limit."""

    caller: Caller
    key_id: str
    requests_per_min: int | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class ApiKeys:
    def __init__(self, entries: list[ApiKeyEntry]) -> None:
        self._matches = {
            e.key_sha256.lower(): KeyMatch(Caller(tenant=e.tenant, team=e.team, user=e.user),
                                           e.key_sha256.lower()[:12], e.requests_per_min)
            for e in entries
        }

    def __len__(self) -> int:
        return len(self._matches)

    def lookup(self, key: str | None) -> KeyMatch | None:
        """The entry of a presented key; None for a missing or unknown key."""
        if not key:
            return None
        return self._matches.get(hash_key(key))

    def caller_for(self, key: str | None) -> Caller | None:
        """The identity of a presented key; None for a missing or unknown key."""
        match = self.lookup(key)
        return match.caller if match else None

    @classmethod
    def load(cls, entries: list[ApiKeyEntry], file: str | None = None) -> ApiKeys:
        """Entries from settings plus those of ``file`` (a bad file raises ValueError)."""
        all_entries = list(entries)
        if file:
            try:
                data = yaml.safe_load(Path(file).read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise ValueError(f"{file}: cannot read API keys: {exc}") from None
            if isinstance(data, dict):
                data = data.get("keys")
            if not isinstance(data, list):
                raise ValueError(f"{file}: expected a list of API key entries")
            all_entries += [ApiKeyEntry.model_validate(item) for item in data]
        return cls(all_entries)


if __name__ == "__main__":  # pragma: no cover - operator helper
    for arg in sys.argv[1:]:
        print(hash_key(arg))
