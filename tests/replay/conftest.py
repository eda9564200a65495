"""The stack replay tests record traffic on: the whole request path with the audit on
SQLite, on the policy given as the fixture's indirect parameter (V1 by default)."""

from __future__ import annotations

import pytest

from tests.conftest import start_stack
from tests.replay.test_replay_policy import V1


@pytest.fixture
def replay_stack(request, tmp_path, kafka_bootstrap, redis_url):
    """A whole stack (audit on SQLite) on policy V1, or the policy text given as the
    fixture's indirect parameter."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(getattr(request, "param", V1))
    database = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    stack = start_stack(tmp_path / "stack", kafka_bootstrap, redis_url, database,
                        providers=("openai",), env={"MODELBUS_POLICY_PATH": str(policy)})
    yield stack, policy, database
    stack.stop()
