"""The tasks (virtual models) a caller may use, read from the routing policy.

The router's own loader and access check are used, so the gateway and the router agree on
what a policy means; a route with an ``allow`` list (tenants/teams) is listed only for
callers it admits. The router still decides each call: the policy it holds is authoritative.
"""

from __future__ import annotations

from modelbus_router.constraints import check_access
from modelbus_router.errors import RoutingError
from modelbus_router.policy import Policy
from modelbus_schemas import Caller


def visible_tasks(policy: Policy, caller: Caller) -> list[str]:
    tasks = []
    for name, route in policy.routes.items():
        try:
            check_access(name, route.allow, caller)
        except RoutingError:
            continue
        tasks.append(name)
    return sorted(tasks)
