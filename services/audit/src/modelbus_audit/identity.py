"""Who an audited record is, taken from the validated event itself, never from the headers
a writer chose.

A record that decodes as its topic's event gets the identity ``<kind>:<the body's own id>``:

- request (``modelbus.requests.v1``): ``request:`` + ``scoped_id(caller.tenant, request_id)``;
- task, result, response (every reply topic), approval request: ``<kind>:`` + body ``event_id``;
- approval decision: ``decision:`` + its ``event_id()``.

Its request id and tenant come from the body too (request, task and approval: the caller's
tenant; result and response: their ``tenant`` field). A record that does not decode gets its
position in the log, ``<topic>:<partition>:<offset>``, as identity and is flagged
``undecoded``. Dead letters keep the original body: the tenant and request id are read from
it with the model of the DLQ's own source topic (the DLQ topic name, not a header).

On every topic where :func:`modelbus_schemas.topics.writer_roles` names writers, the
signature is checked (:func:`modelbus_runtime.signing.verify`); a record that fails is
flagged ``unauthenticated`` (and kept, as evidence). Pure functions: no Kafka, no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelbus_runtime.signing import KeyRing, Unauthenticated, verify
from modelbus_schemas import (
    ApprovalDecisionEvent,
    ApprovalRequestEvent,
    DecodeError,
    RequestEvent,
    ResponseEvent,
    ResultEvent,
    TaskEvent,
    decode,
)
from modelbus_schemas.identity import scoped_id
from modelbus_schemas.topics import (
    APPROVALS_DECISIONS,
    APPROVALS_PENDING,
    DLQ_SUFFIX,
    REPLY_TOPIC_PREFIX,
    REQUESTS,
    RESPONSES,
    RESPONSES_FAMILY_PREFIX,
    RESULTS,
    writer_roles,
)

from modelbus_audit.flags import CONFLICT, FLAGS, UNAUTHENTICATED, UNDECODED, flag_set, join_flags

__all__ = ["CONFLICT", "FLAGS", "UNAUTHENTICATED", "UNDECODED", "Provenance", "flag_set",
           "join_flags", "provenance"]


@dataclass(frozen=True, slots=True)
class Provenance:
    """What the body itself says about a record (``decoded``), and whether its writer is
    authenticated (``signed_by``: the verified role; ``auth_error``: why not)."""

    kind: str | None = None
    body_id: str | None = None
    request_id: str | None = None
    tenant: str | None = None
    decoded: bool = False
    signed_by: str | None = None
    auth_error: str | None = None

    @property
    def identity(self) -> str | None:
        return f"{self.kind}:{self.body_id}" if self.decoded else None


def event_model(topic: str) -> tuple[str, type] | None:
    """The kind and event model of ``topic`` (None for DLQs and unknown topics)."""
    if topic.endswith(DLQ_SUFFIX):
        return None
    if topic == REQUESTS:
        return "request", RequestEvent
    if topic.startswith("modelbus.tasks."):
        return "task", TaskEvent
    if topic == RESULTS:
        return "result", ResultEvent
    if topic == APPROVALS_PENDING:
        return "approval", ApprovalRequestEvent
    if topic == APPROVALS_DECISIONS:
        return "decision", ApprovalDecisionEvent
    if topic == RESPONSES or topic.startswith((RESPONSES_FAMILY_PREFIX, REPLY_TOPIC_PREFIX)):
        return "response", ResponseEvent
    return None


def read_body(topic: str, value: bytes | None) -> Provenance:
    """Decode ``value`` as ``topic``'s event; an undecoded Provenance when it is not one."""
    found = event_model(topic)
    if found is None or not value:
        return Provenance()
    kind, model = found
    try:
        event: Any = decode(model, value)
    except (DecodeError, ValueError, TypeError):
        return Provenance()
    if kind == "request":
        tenant = event.caller.tenant
        body_id = scoped_id(tenant, event.request_id)
    elif kind == "decision":
        tenant, body_id = None, event.event_id()
    elif kind in ("task", "approval"):
        tenant, body_id = event.caller.tenant, event.event_id
    else:
        tenant, body_id = event.tenant, event.event_id
    return Provenance(kind, body_id, event.request_id, tenant, True)


def authenticate(ring: KeyRing | None, topic: str, key: bytes | None, value: bytes | None,
                 headers: list[tuple[str, bytes]]) -> tuple[str | None, str | None]:
    """(verified role, None) or (None, why not); (None, None) where nothing is checked."""
    roles = writer_roles(topic)
    if roles is None or ring is None:
        return None, None
    try:
        return verify(ring, topic=topic, key=key, value=value, headers=headers,
                      allowed_roles=roles), None
    except Unauthenticated as exc:
        return None, str(exc)[:256]
    except Exception as exc:  # noqa: BLE001 - odd header bytes: not authenticated
        return None, f"signature cannot be checked: {type(exc).__name__}"


def provenance(ring: KeyRing | None, topic: str, key: bytes | None, value: bytes | None,
               headers: list[tuple[str, bytes]]) -> Provenance:
    """Body identity and authenticity of one record; dead letters are read as their source
    topic's event (decoded or not, they are identified by their DLQ headers elsewhere)."""
    source = topic.removesuffix(DLQ_SUFFIX)
    body = read_body(source, value)
    signed_by, error = authenticate(ring, topic, key, value, headers)
    return Provenance(body.kind, body.body_id, body.request_id, body.tenant, body.decoded,
                      signed_by, error)
