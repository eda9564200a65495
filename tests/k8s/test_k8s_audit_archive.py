"""The compliance archive in the manifests (components/audit-archive): in prod the audit
names the customer's bucket and its credentials from the Secret modelbus-audit-archive, and
only the audit pods may reach it (TCP 443, public addresses); dev archives nothing."""

from __future__ import annotations

from tests.k8s.manifests import app_deployments, container_env, named, pod_labels, secret_keys
from tests.k8s.test_k8s_network import _egress_rules, archives

SECRET = "modelbus-audit-archive"
FROM_SECRET = {"MODELBUS_AUDIT_ARCHIVE_BUCKET": "bucket",
               "MODELBUS_AUDIT_ARCHIVE_ACCESS_KEY_ID": "access-key-id",
               "MODELBUS_AUDIT_ARCHIVE_SECRET_ACCESS_KEY": "secret-access-key"}


def _secret_refs(deployment) -> dict[str, dict]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {var["name"]: var["valueFrom"]["secretKeyRef"] for var in container.get("env", [])
            if "secretKeyRef" in var.get("valueFrom", {})}


def _external(objs, deployment) -> list[dict]:
    return [rule for rule in _egress_rules(objs, pod_labels(deployment))
            if any("ipBlock" in peer for peer in rule["to"])]


def test_prod_audit_archives_to_the_bucket_of_its_secret(overlay, objs) -> None:
    audit = named(objs, "Deployment", "audit")
    if overlay != "prod":
        assert not archives(audit) and not _external(objs, audit)
        return
    refs = _secret_refs(audit)
    keys = secret_keys(objs)
    for env, key in FROM_SECRET.items():
        assert refs[env] == {"name": SECRET, "key": key}, env
        assert key in keys[SECRET], f"no Secret provides {SECRET}/{key}"
    plain = container_env(objs, audit)
    assert plain["MODELBUS_AUDIT_ARCHIVE_REGION"]
    assert int(plain["MODELBUS_AUDIT_ARCHIVE_AFTER_DAYS"]) > 0
    assert not set(FROM_SECRET) & set(plain), "credentials never as plain values"


def test_only_the_audit_gets_the_archive_egress(overlay, objs) -> None:
    for deployment in app_deployments(objs):
        name = deployment["metadata"]["name"]
        if name == "audit" and overlay == "prod":
            (rule,) = _external(objs, deployment)
            assert [p["port"] for p in rule["ports"]] == [443]
            for peer in rule["to"]:
                assert peer["ipBlock"]["cidr"] == "0.0.0.0/0"
                assert "10.0.0.0/8" in peer["ipBlock"]["except"]
        elif pod_labels(deployment)["app.kubernetes.io/name"] != "adapter-worker":
            assert not _external(objs, deployment), f"{name} may leave the cluster"
