"""Where a request's tenant comes from: which requests on ``modelbus.requests.v1`` the router
believes, and which it refuses.

Identity inside modelbus is (tenant, request id), built with
:func:`modelbus_schemas.identity.scoped_id`. The tenant is ``caller.tenant`` on the request;
this module decides whether that field can be believed:

* **Gateway-signed** (``modelbus_sig`` verifying under the service key ring with role
  ``gateway``): the gateway set ``caller.tenant`` from the caller's API key; believed. Such a
  request may also be answered on the gateway's reply topics (:mod:`modelbus_router.replies`).
* **Tenant-signed** (signed-request mode): a tenant listed in the router's tenant keys
  (``MODELBUS_TENANT_KEYS`` or the file in ``MODELBUS_TENANT_KEYS_FILE``, lines
  ``<tenant>=<kid>:<secret>[;<kid>:<secret>]``, parsed by
  :class:`modelbus_runtime.signing.TenantKeys`) must sign every request as role
  ``tenant:<name>``; an unsigned request naming it, a bad signature, or a signature of tenant
  A on a request whose ``caller.tenant`` is B is refused.
* **Unsigned**, for every other tenant (the default: upstreams in any language produce plain
  JSON + CloudEvents): believed as far as the broker's ACLs allow the producing principal to
  write (Strimzi ``KafkaUser`` per upstream tenant, k8s/base/kafka).

A request carrying a signature that does not verify, or one from any other role, is refused
rather than treated as unsigned: a signature is either right or a reason to stop. A refusal
becomes a ``forbidden`` error response on the default reply topic; nothing is routed. The
message says why without naming anything of another tenant's.

Knows nothing of Kafka: ``app.py`` hands over the record's topic, key, value and headers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelbus_runtime.signing import (
    SIGNATURE_HEADER,
    KeyRing,
    TenantKeys,
    Unauthenticated,
    verify,
)
from modelbus_schemas import ErrorCode, RequestEvent
from modelbus_schemas.topics import GATEWAY

from modelbus_router.errors import RoutingError
from modelbus_router.replies import TopicDirectory, authorize_reply

Via = Literal["unsigned", "gateway", "tenant"]


@dataclass(frozen=True)
class Established:
    """A request whose tenant the router believes, and why."""

    request: RequestEvent
    via: Via

    @property
    def tenant(self) -> str:
        return self.request.caller.tenant

    @property
    def gateway(self) -> bool:
        return self.via == "gateway"


class Refused(RoutingError):
    """The request may not be served as it claims; answer ``forbidden`` on the default topic."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.FORBIDDEN, message)


def load_tenant_keys(inline: str | None, path: str | None) -> TenantKeys:
    """The tenants that sign their requests: a mounted file wins over the inline value; none
    configured means no tenant is in signed-request mode."""
    if path:
        return TenantKeys.parse(Path(path).read_text())
    return TenantKeys.parse(inline)


def _claimed_role(headers: list[tuple[str, bytes | None]]) -> str | None:
    """The role a signature header claims (not yet verified); None when unsigned."""
    raw = [v for k, v in headers if k == SIGNATURE_HEADER]
    if not raw:
        return None
    parts = (raw[0] or b"").split(b";")
    return parts[2].decode("utf-8", "replace") if len(parts) == 4 else ""


class Identity:
    """Decides whose request a record is (see the module docstring)."""

    def __init__(self, service_ring: KeyRing, tenants: TenantKeys | None = None) -> None:
        self.ring = service_ring
        self.tenants = tenants or TenantKeys()

    def establish(self, request: RequestEvent, *, topic: str, key: bytes | None,
                  value: bytes | None, headers: Iterable[tuple[str, bytes | None]]
                  ) -> Established:
        headers = list(headers)
        tenant = request.caller.tenant
        role = _claimed_role(headers)
        if role is None:
            if self.tenants.requires_signature(tenant):
                raise Refused(f"tenant {tenant!r} sends signed requests only; this request "
                              "carries no signature")
            return Established(request, "unsigned")
        try:
            if role == GATEWAY:
                verify(self.ring, topic=topic, key=key, value=value, headers=headers,
                       allowed_roles=[GATEWAY])
                return Established(request, "gateway")
            if role.startswith(TenantKeys.ROLE_PREFIX):
                if role != TenantKeys.ROLE_PREFIX + tenant:
                    raise Refused("the request is signed for another tenant than its "
                                  f"caller.tenant {tenant!r}")
                self.tenants.verify(tenant, topic=topic, key=key, value=value,
                                    headers=headers)
                return Established(request, "tenant")
        except Unauthenticated as exc:
            raise Refused(f"request signature refused: {exc}") from None
        raise Refused("a request is signed by the gateway or by its own tenant, "
                      f"not by role {role!r}")


async def admit(identity: Identity, grants: dict[str, list[str]], topics: TopicDirectory,
                request: RequestEvent, *, topic: str, key: bytes | None, value: bytes | None,
                headers: Iterable[tuple[str, bytes | None]]) -> Established:
    """Everything checked before a request is routed: whose it is (:meth:`Identity.establish`)
    and whether it may be answered where it asks (:func:`~modelbus_router.replies.
    authorize_reply` under the policy's ``reply_topics``). Raises a
    :class:`~modelbus_router.errors.RoutingError` to answer on the default reply topic."""
    caller = identity.establish(request, topic=topic, key=key, value=value, headers=headers)
    await authorize_reply(grants, caller.tenant, request.reply_to, gateway=caller.gateway,
                          directory=topics)
    return caller
