"""Constraints every candidate must pass before dispatch, and the access check of a route.

Each check returns the reason a candidate is rejected (recorded on the decision), or None:

* governance (:func:`modelbus_router.reachable.governance_reason`, the same check every
  judge and check of the plan gets): data class → allowed surfaces (restricted data never
  reaches a hosted model), the model's own data-class allowlist, region (the request's
  region must be among the model's, ``"*"``: any) and the model's tenant/team ``allow``;
* capabilities and limits (:mod:`modelbus_router.capabilities`): tools, images, a JSON
  answer format, embeddings, and the counts and sizes the model's API takes;
* context window: estimated input tokens plus the requested output must fit;
* health: a model whose circuit is open is skipped.

:func:`check_access` is the RBAC part: a route may be restricted to tenants and teams.
"""

from __future__ import annotations

from collections.abc import Collection

from modelbus_schemas import Caller, ErrorCode, RequestEvent

from modelbus_router.capabilities import Needs, capability_reason
from modelbus_router.catalog import CatalogModel
from modelbus_router.errors import RoutingError
from modelbus_router.policy import Policy
from modelbus_router.reachable import Profile, governance_reason
from modelbus_router.routes import Access


def rejection_reason(
    policy: Policy,
    model: CatalogModel,
    request: RequestEvent,
    required_tokens: int,
    open_circuits: Collection[tuple[str, str]],
    needs: Needs | None = None,
) -> str | None:
    reason = governance_reason(policy, model, Profile.of(request))
    if reason is not None:
        return reason
    reason = capability_reason(model, needs or Needs.of(request))
    if reason is not None:
        return reason
    if required_tokens > model.context_window:
        return (
            f"context_window: needs ~{required_tokens} tokens, the window is "
            f"{model.context_window}"
        )
    if (model.provider, model.model) in open_circuits:
        return "health: circuit open"
    return None


def check_access(route_name: str, allow: Access | None, caller: Caller) -> None:
    """Raise ``forbidden`` unless the caller's tenant and team are allowed on the route."""
    if allow is None:
        return
    if allow.tenants is not None and caller.tenant not in allow.tenants:
        raise RoutingError(
            ErrorCode.FORBIDDEN, f"tenant {caller.tenant!r} may not use task {route_name!r}"
        )
    if allow.teams is not None and caller.team not in allow.teams:
        raise RoutingError(
            ErrorCode.FORBIDDEN, f"team {caller.team!r} may not use task {route_name!r}"
        )
