"""The stack replay tests record traffic on: the whole request path with the audit on
SQLite, on the policy given as the fixture's indirect parameter (V1 by default), on a broker
of this package's own.

Why a broker of its own: after the counterfactual run (which creates a reply topic the
audit's pattern subscription picks up while the run's stack stops), the local tansu broker
kept the audit's consumer group from ever admitting a new member again, so every later
stack on the session broker failed to start its audit. Until that is understood, the
package's stacks do not share the session broker with the rest of the suite."""

from __future__ import annotations

import pytest
from modelbus_cli.processes import ProcessGroup
from modelbus_cli.stack import start_broker

from tests.conftest import start_stack
from tests.replay.test_replay_policy import V1


@pytest.fixture(scope="package")
def replay_bootstrap(tmp_path_factory):
    group = ProcessGroup(tmp_path_factory.mktemp("replay-broker"))
    try:
        yield start_broker(group)
    finally:
        group.stop_all()


@pytest.fixture
def replay_stack(request, tmp_path, replay_bootstrap, redis_url):
    """A whole stack (audit on SQLite) on policy V1, or the policy text given as the
    fixture's indirect parameter."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(getattr(request, "param", V1))
    database = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    stack = start_stack(tmp_path / "stack", replay_bootstrap, redis_url, database,
                        providers=("openai",), env={"MODELBUS_POLICY_PATH": str(policy)})
    yield stack, policy, database
    stack.stop()
