"""Fixtures of the aggregator's unit tests: a unique key prefix per test (the Redis client
itself comes from the workspace's root conftest)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def prefix() -> str:
    return f"test:agg:{uuid.uuid4().hex[:8]}"
