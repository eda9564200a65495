"""Which provider the local stack calls for real, and which the simulator stands in for.

A provider is called for real when the environment names a key or an address for it:
``MODELBUS_<PROVIDER>_API_KEY`` / ``MODELBUS_<PROVIDER>_BASE_URL`` for any provider
(self-hosted included), and the variables each vendor's own SDK reads: ``OPENAI_API_KEY``
(and ``OPENAI_BASE_URL``), ``ANTHROPIC_API_KEY`` (and ``ANTHROPIC_BASE_URL``),
``GEMINI_API_KEY``. The ``MODELBUS_`` names win. Its worker then gets that key and base URL
(no base URL: the provider's own, as the worker's settings default to) instead of the
simulator's. Keys are handed to the worker process only; what is printed names the variable
a key came from, never the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

VENDOR_KEYS = {"openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
               "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
               "gemini": ("GEMINI_API_KEY", None)}


@dataclass(frozen=True)
class RealProvider:
    provider: str
    api_key: str | None
    key_from: str | None  # the variable the key came from
    base_url: str | None  # None: the worker's default for the provider

    def worker_env(self) -> dict[str, str]:
        env = {"MODELBUS_PROVIDER": self.provider}
        if self.api_key:
            env["MODELBUS_API_KEY"] = self.api_key
        if self.base_url:
            env["MODELBUS_BASE_URL"] = self.base_url
        return env

    def describe(self) -> str:
        where = self.base_url or "the provider's API"
        key = f"key from {self.key_from}" if self.key_from else "no key"
        return f"REAL       {where} ({key})"


def _first(env: Mapping[str, str], *names: str | None) -> tuple[str | None, str | None]:
    for name in names:
        if name and env.get(name, "").strip():
            return env[name].strip(), name
    return None, None


def real_providers(providers: tuple[str, ...],
                   env: Mapping[str, str]) -> dict[str, RealProvider]:
    """The providers of ``providers`` that ``env`` configures for real calls."""
    found = {}
    for provider in providers:
        prefix = f"MODELBUS_{provider.upper()}_"
        vendor_key, vendor_url = VENDOR_KEYS.get(provider, (None, None))
        key, key_from = _first(env, prefix + "API_KEY", vendor_key)
        url, _ = _first(env, prefix + "BASE_URL", vendor_url)
        if key or url:
            found[provider] = RealProvider(provider, key, key_from, url)
    return found
