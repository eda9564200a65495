"""Identity inside modelbus: a request is (tenant, request id), never the request id alone.

Two tenants may pick the same request id, and tenant names may contain any character the
contract allows, so the pair is encoded unambiguously: the tenant is length-prefixed
(``<len>:<tenant>:<request id>``). ``acme:x`` + ``K77`` and ``acme`` + ``x:K77`` encode as
``6:acme:x:K77`` and ``4:acme:x:K77``. Every Redis key, store key and internal event id that
names a request is built from :func:`scoped_id`.
"""

from __future__ import annotations


def scoped_id(tenant: str, request_id: str) -> str:
    """The one string that identifies a request of a tenant."""
    return f"{len(tenant)}:{tenant}:{request_id}"


def split_scoped_id(scoped: str) -> tuple[str, str]:
    """(tenant, request id) back from :func:`scoped_id`; ``ValueError`` if malformed."""
    length, sep, rest = scoped.partition(":")
    if not sep or not length.isdigit():
        raise ValueError(f"not a scoped request id: {scoped!r}")
    size = int(length)
    tenant, request_id = rest[:size], rest[size + 1:]
    if len(tenant) != size or rest[size:size + 1] != ":" or not request_id:
        raise ValueError(f"not a scoped request id: {scoped!r}")
    return tenant, request_id
