"""The router with its policy-load reach check switched off, for the governance tests only.

It stands for a router whose load-time analysis missed a route (or a policy loaded before
the check existed): whatever the policy, the routing-time check must still keep every
request away from the models its data class forbids. Run as ``python -m`` like the real
service; everything but :func:`modelbus_router.reachable.policy_violations` is the service.
"""

from __future__ import annotations

from modelbus_router import reachable
from modelbus_router.app import main


def _no_violations(policy, limit: int = 5) -> list[str]:
    return []


if __name__ == "__main__":
    reachable.policy_violations = _no_violations
    main()
