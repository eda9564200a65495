"""Reply topics under policy: which topics a tenant's response may be published to.

A request names its reply topic (``reply_to``, default ``modelbus.responses.v1``). Without a
check, anyone could have the router and aggregator write into an internal topic
(``modelbus.tasks.openai.v1``, ``modelbus.results.v1``), a broker topic
(``__consumer_offsets``), or any name the broker would auto-create outside what the audit
consumes. So the policy grants reply topics per tenant, under the top-level key
``reply_topics``::

    reply_topics:
      "*":  ["replies.{tenant}.*"]            # every tenant: its own replies.<tenant>.<x>
      acme: ["replies.shared.billing", "modelbus.responses.acme-*"]

Rules:

* ``modelbus.responses.v1`` (the default reply topic) is always allowed; the grants under
  ``"*"`` apply to every tenant, the grants under a tenant's name to that tenant only.
* A grant is a topic name, or a pattern where ``*`` stands for one name segment (one or more
  characters, no ``.``) and ``{tenant}`` for the request's tenant, taken literally (a tenant
  ``acme`` never matches a topic granted to ``acme.x`` by ``replies.{tenant}.*``).
* Every grant lives under ``replies.`` or in the ``modelbus.responses.`` family, and no name
  it can match may be internal (:func:`modelbus_schemas.topics.is_internal`: modelbus' own
  topics, ``__`` topics, dead-letter topics); the gateway's reply topics
  (``modelbus.responses.gateway...``) are not grantable. A policy that breaks this refuses
  to load, with a message naming the grant.
* A request signed by the gateway (see :mod:`modelbus_router.identity`) may also use the
  gateway's reply topics: ``modelbus.responses.gateway.v1`` and
  ``modelbus.responses.gateway-<instance>.v1``.
* Whatever the policy says, an internal topic is never a reply topic.

A refused topic gets an error response (``forbidden``, naming the topic) on the default
topic and nothing is ever written to it. Services never rely on broker auto-creation: an
allowed topic other than the default must already exist (:class:`TopicDirectory`, answered
by :mod:`modelbus_router.topic_directory` from cached broker metadata), or the request gets
an error on the default topic too. This module knows nothing of Kafka.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Protocol

from modelbus_schemas import ErrorCode
from modelbus_schemas.topics import (
    REPLY_TOPIC_PREFIX,
    RESPONSES,
    RESPONSES_FAMILY_PREFIX,
    is_internal,
)
from pydantic import AfterValidator

from modelbus_router.errors import RoutingError

ALL_TENANTS = "*"
TENANT_PLACEHOLDER = "{tenant}"
#: The gateway's reply topics: the shared one and one per instance.
GATEWAY_FAMILY = RESPONSES_FAMILY_PREFIX + "gateway"
_GATEWAY_TOPIC = re.compile(r"^" + re.escape(GATEWAY_FAMILY) + r"[.-][A-Za-z0-9._-]+$")
_GRANT_CHARS = re.compile(r"^[A-Za-z0-9._*-]+$")


def _check_grant(grant: str) -> None:
    bare = grant.replace(TENANT_PLACEHOLDER, "tenant")
    if not _GRANT_CHARS.match(bare) or "**" in bare:
        raise ValueError(f"{grant!r} is not a topic name or pattern (letters, digits, '.', "
                         f"'_', '-', '*' for one name segment, {TENANT_PLACEHOLDER})")
    # a pattern may still match a dead-letter name (``replies.*`` matches ``replies.dlq``):
    # those are refused when a request names them; a grant that is one is refused here
    if is_internal(bare.replace("*", "x")):
        raise ValueError(f"{grant!r} names an internal topic; no reply may go there")
    if not grant.startswith((REPLY_TOPIC_PREFIX, RESPONSES_FAMILY_PREFIX)):
        raise ValueError(f"{grant!r} is outside the reply topic families: a reply topic "
                         f"starts with {REPLY_TOPIC_PREFIX!r} or {RESPONSES_FAMILY_PREFIX!r}")
    if grant.startswith(GATEWAY_FAMILY):
        raise ValueError(f"{grant!r}: the gateway's reply topics are reserved for requests "
                         "the gateway signs")


def _validate_grants(grants: dict[str, list[str]]) -> dict[str, list[str]]:
    for tenant, topics in grants.items():
        for grant in topics:
            try:
                _check_grant(grant)
            except ValueError as exc:
                raise ValueError(f"tenant {tenant!r}: {exc}") from None
    return grants


#: The policy's ``reply_topics`` key: tenant (or ``"*"``) → topic names and patterns.
ReplyTopicGrants = Annotated[dict[str, list[str]], AfterValidator(_validate_grants)]


@lru_cache(maxsize=4096)
def _pattern(grant: str, tenant: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\*|\{tenant\})", grant):
        if piece == "*":
            parts.append(r"[^.]+")
        elif piece == TENANT_PLACEHOLDER:
            parts.append(re.escape(tenant))
        else:
            parts.append(re.escape(piece))
    return re.compile("^" + "".join(parts) + "$")


def granted(grants: dict[str, list[str]], tenant: str, topic: str) -> bool:
    """Whether the policy grants ``topic`` to ``tenant`` (the default topic always)."""
    if topic == RESPONSES:
        return True
    if is_internal(topic) or topic.startswith(GATEWAY_FAMILY):
        return False
    for scope in (ALL_TENANTS, tenant):
        if any(_pattern(g, tenant).match(topic) for g in grants.get(scope, ())):
            return True
    return False


def is_gateway_topic(topic: str) -> bool:
    return bool(_GATEWAY_TOPIC.match(topic)) and not is_internal(topic)


class TopicDirectory(Protocol):
    """Which topics exist on the broker (a cached view is fine)."""

    async def exists(self, topic: str) -> bool: ...


class ReplyRefused(RoutingError):
    """The request may not be answered on its reply topic; answer on the default topic
    (``forbidden`` for a topic the policy does not grant, ``invalid_request`` for a granted
    one that does not exist)."""


async def authorize_reply(grants: dict[str, list[str]], tenant: str, topic: str, *,
                          gateway: bool, directory: TopicDirectory) -> None:
    """Raise :class:`ReplyRefused` unless ``tenant`` may be answered on ``topic`` and the
    topic exists (the default topic is always there)."""
    if topic == RESPONSES:
        return
    allowed = granted(grants, tenant, topic) or (gateway and is_gateway_topic(topic))
    if not allowed:
        raise ReplyRefused(ErrorCode.FORBIDDEN, f"reply topic {topic!r} is not allowed for tenant {tenant!r}; "
                           f"the policy's reply_topics grants the topics a tenant may use, "
                           f"and {RESPONSES!r} is always allowed")
    if not await directory.exists(topic):
        raise ReplyRefused(ErrorCode.INVALID_REQUEST, f"reply topic {topic!r} does not exist; reply topics are created "
                           f"ahead of use, never by publishing to them")
