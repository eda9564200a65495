"""Content the gateway claim-checked comes back before the router screens it.

The gateway stores large parts of a call in the blob store (so the request event fits one
Kafka message) under the caller's tenant. Guardrails, the secret screen, token estimates and
the classifier must read that content as if it had come inline, so a request *signed by the
gateway* has its references resolved first; the router claim-checks again after screening,
when it builds tasks (the blobs are content-addressed: nothing is stored twice). References
in a request nobody authenticated as the gateway stay refused by the planner: only modelbus
makes them.
"""

from __future__ import annotations

from modelbus_runtime.claimcheck import BlobStore, ClaimCheckError, has_blobs, resolve_messages
from modelbus_schemas import ErrorCode, RequestEvent

from modelbus_router.errors import RoutingError


async def inflate(store: BlobStore, request: RequestEvent) -> RequestEvent:
    """``request`` with the gateway's references replaced by the stored parts."""
    if not has_blobs(request.messages):
        return request
    try:
        messages = await resolve_messages(store, request.caller.tenant, request.messages)
    except ClaimCheckError as exc:
        raise RoutingError(ErrorCode.INVALID_REQUEST, str(exc)) from None
    return request.model_copy(update={"messages": messages})
