"""Authenticated internal events: HMAC-SHA256 signatures bound to a producer role.

Every event a modelbus service publishes carries one header, ``modelbus_sig``::

    v1;<key id>;<role>;<base64url MAC, unpadded>

The MAC is HMAC-SHA256 under a *role key* over a canonical, length-prefixed encoding of
what identifies the event: the signature version, topic, Kafka key, value, ``ce_id``,
``ce_type``, role and key id (see :func:`signed_bytes`; docs/security.md gives the byte
layout so any language can sign). Each part is prefixed with its 4-byte big-endian length,
so no two different events share an encoding. The topic is signed: a result replayed onto
a task topic, or a response copied to another reply topic, fails verification.

Keys. A key ring holds ``<kid>:<secret>`` entries (``MODELBUS_SIGNING_KEYS``, or a mounted
file in ``MODELBUS_SIGNING_KEYS_FILE``); the first entry signs, every entry verifies, so a
rotation is: add the new key second everywhere, move it first, then drop the old one. A
role key is ``HMAC(secret, "modelbus role key v1:" + role)``: a MAC made for one role never
verifies as another. HMAC is symmetric, so a process that holds a ring can sign as any role;
the role binding stops a writer who has no key (anyone else on a broker without ACLs), and
Kafka ACLs (one principal per service, k8s/base/kafka/users.yaml) confine each service to
the topics its role writes. Upstream tenants that sign their requests hold a ring of their
own (:class:`TenantKeys`) that no service ring contains.

Which role may write which topic is the contract's (:func:`modelbus_schemas.topics.writer_roles`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "modelbus_sig"
VERSION = "v1"
_VERSION_BYTES = VERSION.encode()
_ROLE_KEY_LABEL = b"modelbus role key v1:"

#: Used only when no ring is configured, with a warning at start: a development stack
#: (``make run`` generates a random ring per work directory instead).
DEVELOPMENT_RING = "dev:modelbus-development-signing-key-do-not-use-in-production"


class Unauthenticated(Exception):
    """An event without a valid signature from a role allowed on its topic."""


@dataclass(frozen=True)
class KeyRing:
    """Signing keys by id; the first one signs, all of them verify."""

    keys: tuple[tuple[str, bytes], ...]
    _role_keys: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a key ring needs at least one key")
        ids = [kid for kid, _ in self.keys]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate key id in the signing key ring")
        for kid, secret in self.keys:
            if not kid or any(c in kid for c in ";:,") or len(secret) < 16:
                raise ValueError(f"signing key {kid!r}: ids have no ';:,' and secrets "
                                 "are at least 16 bytes")

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """``kid:secret[,kid:secret...]`` (commas or newlines between entries)."""
        entries = []
        for raw in text.replace("\n", ",").split(","):
            entry = raw.strip()
            if not entry:
                continue
            kid, sep, secret = entry.partition(":")
            if not sep:
                raise ValueError("a signing key entry is <key id>:<secret>")
            entries.append((kid.strip(), secret.strip().encode()))
        return cls(tuple(entries))

    @classmethod
    def generate(cls, kid: str = "local") -> str:
        """A fresh ring in ``parse`` form, for a development stack."""
        return f"{kid}:{secrets.token_urlsafe(32)}"

    @property
    def active_kid(self) -> str:
        return self.keys[0][0]

    def role_key(self, kid: str, role: str) -> bytes | None:
        cached = self._role_keys.get((kid, role))
        if cached is None:
            secret = dict(self.keys).get(kid)
            if secret is None:
                return None
            cached = hmac.new(secret, _ROLE_KEY_LABEL + role.encode(), hashlib.sha256).digest()
            self._role_keys[(kid, role)] = cached
        return cached


def load_ring(inline: str | None, path: str | None) -> KeyRing:
    """The configured ring: a file wins over the inline value; neither: the development
    ring, with a warning."""
    if path:
        return KeyRing.parse(Path(path).read_text())
    if inline:
        return KeyRing.parse(inline)
    log.warning("no signing keys configured (MODELBUS_SIGNING_KEYS): using the built-in "
                "development key, which anyone can read; never run production like this")
    return KeyRing.parse(DEVELOPMENT_RING)


def signed_bytes(*, topic: str, key: bytes | None, value: bytes | None, ce_id: bytes | None,
                 ce_type: bytes | None, role: str, kid: str) -> bytes:
    """The canonical encoding a signature covers (absent parts encode as empty): each part
    as its 4-byte big-endian length, then its bytes."""
    parts = (_VERSION_BYTES, topic.encode(), key or b"", value or b"", ce_id or b"",
             ce_type or b"", role.encode(), kid.encode())
    out = bytearray()
    for part in parts:
        out += len(part).to_bytes(4, "big")
        out += part
    return bytes(out)


def _mac(role_key: bytes, message: bytes) -> str:
    digest = hmac.digest(role_key, message, "sha256")  # one C call: no HMAC object
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Signer:
    """Signs what one role publishes."""

    def __init__(self, ring: KeyRing, role: str) -> None:
        self.ring = ring
        self.role = role

    def header(self, topic: str, key: bytes | None, value: bytes | None,
               ce_id: bytes | None, ce_type: bytes | None) -> tuple[str, bytes]:
        kid = self.ring.active_kid
        role_key = self.ring.role_key(kid, self.role)
        message = signed_bytes(topic=topic, key=key, value=value, ce_id=ce_id,
                               ce_type=ce_type, role=self.role, kid=kid)
        return SIGNATURE_HEADER, f"{VERSION};{kid};{self.role};{_mac(role_key, message)}".encode()


_IDENTIFYING = {SIGNATURE_HEADER: 0, "ce_id": 1, "ce_type": 2}


def _identifying_headers(headers: Iterable[tuple[str, bytes | None]]) -> list[bytes | None]:
    """The signature, ``ce_id`` and ``ce_type`` headers, in one pass; a second copy of any of
    them is refused (which copy a consumer reads would otherwise be up to its client)."""
    found: list[bytes | None] = [None, None, None]
    for name, value in headers:
        slot = _IDENTIFYING.get(name)
        if slot is not None:
            if found[slot] is not None:
                raise Unauthenticated(f"more than one {name} header")
            found[slot] = value if value is not None else b""
    return found


def verify(ring: KeyRing, *, topic: str, key: bytes | None, value: bytes | None,
           headers: Iterable[tuple[str, bytes | None]], allowed_roles: Iterable[str]) -> str:
    """The role that signed the event; :class:`Unauthenticated` unless the signature is
    valid under a key of ``ring`` and made by one of ``allowed_roles``."""
    raw, ce_id, ce_type = _identifying_headers(headers)
    if raw is None:
        raise Unauthenticated("unsigned event on a topic only modelbus services write")
    try:
        version, kid, role, mac = raw.decode("ascii").split(";")
    except (UnicodeDecodeError, ValueError):
        raise Unauthenticated("malformed signature header") from None
    if version != VERSION:
        raise Unauthenticated(f"unknown signature version {version!r}")
    allowed = set(allowed_roles)
    if role not in allowed:
        raise Unauthenticated(f"role {role!r} may not write {topic} "
                              f"(allowed: {', '.join(sorted(allowed))})")
    role_key = ring.role_key(kid, role)
    if role_key is None:
        raise Unauthenticated(f"signed with unknown key id {kid!r}")
    message = signed_bytes(topic=topic, key=key, value=value, ce_id=ce_id, ce_type=ce_type,
                           role=role, kid=kid)
    if not hmac.compare_digest(_mac(role_key, message), mac):
        raise Unauthenticated("signature does not match the event")
    return role


class TenantKeys:
    """Rings of the tenants that sign their requests (signed-request mode): a tenant listed
    here has every request checked, and an unsigned request naming it is refused."""

    ROLE_PREFIX = "tenant:"

    def __init__(self, rings: Mapping[str, KeyRing] | None = None) -> None:
        self.rings = dict(rings or {})

    @classmethod
    def parse(cls, text: str | None) -> TenantKeys:
        """``tenant=kid:secret[;kid:secret]`` entries separated by newlines."""
        rings: dict[str, KeyRing] = {}
        for line in (text or "").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            tenant, sep, ring = line.partition("=")
            if not sep:
                raise ValueError("a tenant key line is <tenant>=<kid>:<secret>[;...]")
            rings[tenant.strip()] = KeyRing.parse(ring.replace(";", ","))
        return cls(rings)

    def requires_signature(self, tenant: str) -> bool:
        return tenant in self.rings

    def verify(self, tenant: str, *, topic: str, key: bytes | None, value: bytes | None,
               headers: Iterable[tuple[str, bytes | None]]) -> None:
        ring = self.rings.get(tenant)
        if ring is None:
            raise Unauthenticated(f"tenant {tenant!r} has no request signing keys")
        verify(ring, topic=topic, key=key, value=value, headers=headers,
               allowed_roles=[self.ROLE_PREFIX + tenant])

    @classmethod
    def signer(cls, ring: KeyRing, tenant: str) -> Signer:
        """What an upstream in Python signs its requests with."""
        return Signer(ring, cls.ROLE_PREFIX + tenant)
