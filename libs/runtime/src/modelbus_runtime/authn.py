"""Which records a consumer believes: an internal event only from a role allowed to write its
topic (:func:`modelbus_schemas.topics.writer_roles`), checked with the service's key ring
(:mod:`modelbus_runtime.signing`). A record that fails is a poison message with reason
``unauthenticated``: dead-lettered, never handled."""

from __future__ import annotations

from modelbus_schemas import DlqReason
from modelbus_schemas.topics import writer_roles

from modelbus_runtime.errors import PoisonMessage
from modelbus_runtime.inbound import Inbound
from modelbus_runtime.signing import KeyRing, Unauthenticated, verify


def authenticate(ring: KeyRing, message: Inbound) -> None:
    """Record on ``message.signed_by`` the role that signed it, or raise
    :class:`PoisonMessage`; records of topics anyone may write (requests, DLQs) pass."""
    roles = writer_roles(message.topic)
    if roles is None:
        return
    try:
        message.signed_by = verify(ring, topic=message.topic, key=message.key,
                                   value=message.value, headers=message.headers,
                                   allowed_roles=roles)
    except Unauthenticated as exc:
        raise PoisonMessage(str(exc), DlqReason.UNAUTHENTICATED) from None
