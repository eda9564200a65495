"""Every overlay renders with ``kubectl kustomize``; core objects validate against the
Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields fail); custom
resources (Strimzi, KEDA, Prometheus Operator, External Secrets) get structural checks;
every name a workload refers to exists in the same render."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.k8s.manifests import (
    OVERLAYS,
    named,
    of_kind,
    pod_templates,
    render,
    secret_keys,
    selects,
)

# Oldest and newest Kubernetes minor we support.
K8S_VERSIONS = ("1.29.0", "1.32.0")

CRD_KINDS = {
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("kafka.strimzi.io/v1beta2", "KafkaUser"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("external-secrets.io/v1", "ExternalSecret"),
}


def test_every_overlay_is_found() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_objects_validate_against_kubernetes_schemas(objs, version: str) -> None:
    core = [o for o in objs if (o["apiVersion"], o["kind"]) not in CRD_KINDS]
    assert len(core) > 30
    for obj in core:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_custom_resources_are_only_known_kinds(objs) -> None:
    groups = {"kafka.strimzi.io", "keda.sh", "monitoring.coreos.com", "external-secrets.io"}
    for obj in objs:
        if obj["apiVersion"].split("/")[0] in groups:
            assert (obj["apiVersion"], obj["kind"]) in CRD_KINDS, obj["kind"]


def test_names_are_unique_and_namespaced(overlay: str, objs) -> None:
    ids = [(o["kind"], o["metadata"]["name"]) for o in objs]
    assert len(ids) == len(set(ids))
    namespaces = of_kind(objs, "Namespace")
    assert len(namespaces) == 1
    ns = namespaces[0]["metadata"]["name"]
    for obj in objs:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == ns, obj["metadata"]["name"]


def test_strimzi_kafka_structure(objs) -> None:
    (kafka,) = of_kind(objs, "Kafka")
    cluster = kafka["metadata"]["name"]
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert any(lsn["port"] == 9092 and lsn["type"] == "internal" for lsn in listeners)
    assert "topicOperator" in kafka["spec"]["entityOperator"]
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
    pools = of_kind(objs, "KafkaNodePool")
    assert pools and all(p["metadata"]["labels"]["strimzi.io/cluster"] == cluster for p in pools)
    for pool in pools:
        assert pool["spec"]["replicas"] >= 1
        assert set(pool["spec"]["roles"]) <= {"controller", "broker"}
        assert pool["spec"]["storage"]["type"] in {"ephemeral", "persistent-claim", "jbod"}
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    config = kafka["spec"]["kafka"]["config"]
    assert config["min.insync.replicas"] <= config["default.replication.factor"] <= brokers
    for topic in of_kind(objs, "KafkaTopic"):
        spec = topic["spec"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        assert isinstance(spec["partitions"], int) and spec["partitions"] >= 1
        assert 1 <= spec["replicas"] <= brokers, topic["metadata"]["name"]
        assert spec["config"]["min.insync.replicas"] <= spec["replicas"]
        assert int(spec["config"]["retention.ms"]) > 0


def test_scaled_objects_structure(objs) -> None:
    scaled = of_kind(objs, "ScaledObject")
    assert scaled
    partitions = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in of_kind(objs, "KafkaTopic")}
    (kafka,) = of_kind(objs, "Kafka")
    for so in scaled:
        spec = so["spec"]
        named(objs, "Deployment", spec["scaleTargetRef"]["name"])
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        assert meta["bootstrapServers"] == f"{kafka['metadata']['name']}-kafka-bootstrap:9092"
        assert int(meta["lagThreshold"]) > 0
        assert meta["consumerGroup"]
        # Consumers beyond the partition count sit idle.
        assert spec["maxReplicaCount"] <= partitions[meta["topic"]]
        # The listener authenticates with SCRAM: KEDA logs in as the scaled worker.
        assert meta["sasl"] == "scram_sha512" and meta["tls"] == "disable"
        auth = named(objs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        container = named(objs, "Deployment", spec["scaleTargetRef"]["name"])["spec"]["template"]["spec"]["containers"][0]
        env_names = {v["name"] for v in container["env"]}
        assert {e["parameter"] for e in auth["spec"]["env"]} == {"username", "password"}
        for source in auth["spec"]["env"]:
            assert source["containerName"] == container["name"] and source["name"] in env_names


STRIMZI_ACL_OPERATIONS = {"Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
                          "AlterConfigs", "DescribeConfigs", "IdempotentWrite", "All"}


def test_kafka_users_structure(objs) -> None:
    """Every KafkaUser belongs to the cluster, authenticates the way a listener accepts, and
    has well-formed simple ACLs (Strimzi v1beta2: resource, operations)."""
    (kafka,) = of_kind(objs, "Kafka")
    cluster = kafka["metadata"]["name"]
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    accepted = {lsn["authentication"]["type"] for lsn in kafka["spec"]["kafka"]["listeners"]
                if "authentication" in lsn}
    assert all("authentication" in lsn for lsn in kafka["spec"]["kafka"]["listeners"])
    users = of_kind(objs, "KafkaUser")
    assert len(users) >= 6
    for user in users:
        name = user["metadata"]["name"]
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == cluster, name
        assert user["spec"]["authentication"]["type"] in accepted, name
        authz = user["spec"]["authorization"]
        assert authz["type"] == "simple" and authz["acls"], name
        for acl in authz["acls"]:
            resource = acl["resource"]
            assert resource["type"] in {"topic", "group", "cluster", "transactionalId"}, name
            assert resource.get("patternType", "literal") in {"literal", "prefix"}, name
            assert resource["name"] and resource["name"] != "*", f"{name}: no wildcard grants"
            assert acl["operations"] and set(acl["operations"]) <= STRIMZI_ACL_OPERATIONS - {"All"}, name
            assert "PROVIDER" not in resource["name"], f"{name}: placeholder left in {resource['name']}"


def test_monitoring_resources_structure(objs) -> None:
    (monitor,) = of_kind(objs, "ServiceMonitor")
    scraped = [s for s in of_kind(objs, "Service") if selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
    assert {s["metadata"]["labels"]["app.kubernetes.io/name"] for s in scraped} >= {
        "gateway", "router", "aggregator", "audit", "adapter-worker"}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["path"] == "/metrics"
        for service in scraped:
            assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    for rule_set in of_kind(objs, "PrometheusRule"):
        for group in rule_set["spec"]["groups"]:
            assert group["rules"]
            for rule in group["rules"]:
                assert rule["alert"] and rule["expr"]


def test_every_configmap_and_secret_reference_resolves(objs) -> None:
    secrets = secret_keys(objs)
    configmaps = {c["metadata"]["name"]: set(c.get("data", {})) for c in of_kind(objs, "ConfigMap")}
    checked = 0
    for workload_name, template in pod_templates(objs):
        pod = template["spec"]
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps
                checked += 1
            for var in container.get("env", []):
                ref = var.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["key"] in secrets[ref["secretKeyRef"]["name"]]
                    checked += 1
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in configmaps[ref["configMapKeyRef"]["name"]]
                    checked += 1
        for volume in pod.get("volumes", []):
            for kind, name_field, known in (("configMap", "name", configmaps), ("secret", "secretName", secrets)):
                if kind in volume:
                    name = volume[kind][name_field]
                    assert name in known, f"{workload_name}: {kind} {name} missing"
                    for item in volume[kind].get("items", []):
                        assert item["key"] in known[name], f"{name} has no key {item['key']}"
                    checked += 1
    assert checked > 20


def test_every_service_has_probes_resources_hardening_and_a_pdb(objs) -> None:
    pdbs = of_kind(objs, "PodDisruptionBudget")
    for workload in of_kind(objs, "Deployment") + of_kind(objs, "StatefulSet"):
        name = workload["metadata"]["name"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            assert container["readinessProbe"] and container["livenessProbe"], name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
        if labels.get("modelbus.io/role") == "app":
            container = pod["containers"][0]
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
            assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
            assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            matching = [p for p in pdbs if selects(p["spec"]["selector"], labels)]
            assert len(matching) == 1, f"{name}: {len(matching)} PodDisruptionBudgets"


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_rendering_is_deterministic(overlay_name: str) -> None:
    render.cache_clear()
    first = render(overlay_name)
    render.cache_clear()
    assert render(overlay_name) == first
