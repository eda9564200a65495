"""The policy version in force and refused reloads are visible on /metrics (router and
gateway read their policy through ``modelbus_router.reload.PolicySource``)."""

from __future__ import annotations

import uuid

from modelbus_router.policy import DEFAULT_POLICY_PATH, content_version
from modelbus_router.reload import PolicySource
from prometheus_client import REGISTRY


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def versions_in_force() -> set[str]:
    return {s.labels["version"] for family in REGISTRY.collect()
            for s in family.samples if s.name == "modelbus_policy_info" and s.value == 1}


def test_version_in_force_and_refused_reloads_are_exported(tmp_path):
    # a version no other PolicySource of this process can have in force
    good = DEFAULT_POLICY_PATH.read_text() + f"\n# {uuid.uuid4().hex}\n"
    path = tmp_path / "policy.yaml"
    path.write_text(good)
    source = PolicySource(path)
    assert source.current.version in versions_in_force()
    assert value("modelbus_policy_reload_refused") == 0
    refused_before = value("modelbus_policy_reloads_total", outcome="refused") or 0.0

    path.write_text("routes: [this is not a policy\n")
    assert source.refresh() is False
    assert value("modelbus_policy_reload_refused") == 1
    assert value("modelbus_policy_reloads_total", outcome="refused") == refused_before + 1
    assert source.current.version in versions_in_force(), "the last good version still serves"

    changed = good + "\n# a comment changes the version\n"
    path.write_text(changed)
    assert source.refresh() is True
    assert value("modelbus_policy_reload_refused") == 0
    assert content_version(changed) in versions_in_force()
    assert content_version(good) not in versions_in_force(), "the old version's series is gone"
