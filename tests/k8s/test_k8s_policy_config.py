"""The routing-policy ConfigMap: k8s/base/router/default_policy.yaml is the packaged default,
byte for byte, and the router and the gateway mount it where MODELBUS_POLICY_PATH points."""

from __future__ import annotations

import pytest
from modelbus_router.policy import DEFAULT_POLICY_PATH, load_policy

from tests.k8s.manifests import K8S, container_env, mounted_source, mounted_text, named


def test_k8s_policy_copy_equals_the_packaged_default() -> None:
    copy = K8S / "base" / "router" / "default_policy.yaml"
    assert copy.read_bytes() == DEFAULT_POLICY_PATH.read_bytes(), (
        "k8s/base/router/default_policy.yaml drifted from the packaged default policy: "
        f"cp {DEFAULT_POLICY_PATH} {copy}")


@pytest.mark.parametrize("service", ["router", "gateway"])
def test_service_mounts_the_policy_at_its_policy_path(objs, service: str, tmp_path) -> None:
    deployment = named(objs, "Deployment", service)
    policy_path = container_env(objs, deployment)["MODELBUS_POLICY_PATH"]
    volume, _ = mounted_source(deployment, policy_path)
    assert volume["configMap"]["name"].startswith("modelbus-routing-policy")
    text = mounted_text(objs, deployment, policy_path)
    # What the service will load in the pod is a valid policy with the packaged version.
    (tmp_path / "policy.yaml").write_text(text)
    assert load_policy(tmp_path / "policy.yaml").version == load_policy().version


def test_gateway_and_router_read_the_same_policy(objs) -> None:
    """/v1/models lists the tasks of the policy the router routes by: one ConfigMap for both."""
    router, gateway = (named(objs, "Deployment", s) for s in ("router", "gateway"))
    sources = [mounted_source(d, container_env(objs, d)["MODELBUS_POLICY_PATH"])[0]["configMap"]["name"]
               for d in (router, gateway)]
    assert sources[0] == sources[1]
