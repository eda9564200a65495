"""NetworkPolicies: only adapter workers (and the audit, when it archives to the customer's
bucket) may leave the cluster (TCP 443 to public addresses);
every other modelbus service may reach only DNS, Kafka, Redis and the OpenTelemetry
Collector (PostgreSQL too for the services sharing the claim-check blob store: gateway,
router, adapter workers, audit; never the aggregator); the gateway takes API calls from the ingress
controller, every service takes metrics scrapes from Prometheus, and nothing else gets in.

Evaluates the rendered policies the way Kubernetes does (policies add up per pod)."""

from __future__ import annotations

from tests.k8s.manifests import app_deployments, named, of_kind, pod_labels, selects

INGRESS_NAMESPACE = "ingress-nginx"
MONITORING_NAMESPACE = "monitoring"


def _rules(objs, labels: dict[str, str], direction: str) -> list[dict]:
    key = direction.lower()
    rules: list[dict] = []
    for policy in of_kind(objs, "NetworkPolicy"):
        spec = policy["spec"]
        if direction in spec.get("policyTypes", []) and selects(spec["podSelector"], labels):
            rules += spec.get(key, [])
    return rules


def _egress_rules(objs, labels: dict[str, str]) -> list[dict]:
    return _rules(objs, labels, "Egress")


def _name(deployment) -> str:
    return pod_labels(deployment)["app.kubernetes.io/name"]


def _is_worker(deployment) -> bool:
    return _name(deployment) == "adapter-worker"


#: The services that store or read claim-checked parts (or, the audit, delete them).
BLOB_STORE_SERVICES = {"gateway", "router", "adapter-worker", "audit"}


def _uses_blob_store(deployment) -> bool:
    return _name(deployment) in BLOB_STORE_SERVICES


#: The OpenTelemetry Collector the manifests send traces to (OTEL_EXPORTER_OTLP_ENDPOINT).
COLLECTOR = ({"app.kubernetes.io/name": "opentelemetry-collector"}, MONITORING_NAMESPACE)


def _destinations(objs) -> dict[str, tuple[dict[str, str], str | None]]:
    """Destinations by name: the labels of their pods and their namespace (None: ours)."""
    redis = pod_labels(next(s for s in of_kind(objs, "StatefulSet") if "redis" in s["metadata"]["name"]))
    postgres = pod_labels(next(s for s in of_kind(objs, "StatefulSet") if "postgres" in s["metadata"]["name"]))
    (kafka,) = of_kind(objs, "Kafka")
    # The labels Strimzi puts on the broker pods of this cluster.
    broker = {"strimzi.io/cluster": kafka["metadata"]["name"], "strimzi.io/kind": "Kafka"}
    return {"redis": (redis, None), "postgres": (postgres, None), "kafka": (broker, None),
            "dns": ({"k8s-app": "kube-dns"}, "kube-system"), "otlp": COLLECTOR}


def _peer_matches(peer: dict, labels: dict[str, str], namespace: str | None) -> bool:
    """Kubernetes semantics: a podSelector alone means this namespace; with a
    namespaceSelector, pods of the namespaces it selects."""
    if "podSelector" not in peer:
        return False
    if "namespaceSelector" in peer:
        ns = {"kubernetes.io/metadata.name": namespace or "modelbus"}
        in_namespace = selects(peer["namespaceSelector"], ns)
    else:
        in_namespace = namespace is None
    return in_namespace and selects(peer["podSelector"], labels)


def _reachable(objs, deployment) -> set[tuple[str, int]]:
    allowed: set[tuple[str, int]] = set()
    for rule in _egress_rules(objs, pod_labels(deployment)):
        for peer in rule["to"]:
            for target, (labels, namespace) in _destinations(objs).items():
                if _peer_matches(peer, labels, namespace):
                    allowed |= {(target, p["port"]) for p in rule["ports"]}
    return allowed


def _admitted_ports(objs, labels: dict[str, str], from_namespace: str) -> set[int]:
    """Ports a pod of another namespace (labelled only with its name) may open to the pod."""
    ns_labels = {"kubernetes.io/metadata.name": from_namespace}
    ports: set[int] = set()
    for rule in _rules(objs, labels, "Ingress"):
        for peer in rule.get("from", []):
            if "namespaceSelector" not in peer or "ipBlock" in peer:
                continue  # pod selectors alone admit pods of the policy's own namespace
            if selects(peer["namespaceSelector"], ns_labels) and ("podSelector" not in peer or selects(peer["podSelector"], {})):
                ports |= {p["port"] for p in rule["ports"]}
    return ports


def test_every_service_pod_is_egress_restricted(objs) -> None:
    for deployment in app_deployments(objs):
        rules = _egress_rules(objs, pod_labels(deployment))
        assert rules, f"{deployment['metadata']['name']} has no egress policy: it may reach anything"
        for rule in rules:
            assert rule.get("to"), "a rule without 'to' allows every destination"
            assert rule.get("ports"), "a rule without 'ports' allows every port"


def archives(deployment) -> bool:
    """The audit with the compliance archive on (components/audit-archive): it writes to
    the customer's bucket."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return _name(deployment) == "audit" and any(
        var["name"] == "MODELBUS_AUDIT_ARCHIVE_BUCKET" for var in container.get("env", []))


def test_only_workers_and_the_archiving_audit_reach_outside_the_cluster_on_443(objs) -> None:
    apps = app_deployments(objs)
    assert any(_is_worker(d) for d in apps) and any(not _is_worker(d) for d in apps)
    for deployment in apps:
        rules = _egress_rules(objs, pod_labels(deployment))
        external = [r for r in rules if any("ipBlock" in peer for peer in r["to"])]
        if _is_worker(deployment) or archives(deployment):
            assert external, f"{deployment['metadata']['name']} cannot reach its provider or bucket"
            for rule in external:
                assert [p["port"] for p in rule["ports"]] == [443]
                assert all(peer["ipBlock"]["cidr"] == "0.0.0.0/0" for peer in rule["to"])
        else:
            assert not external, f"{deployment['metadata']['name']} may leave the cluster"


def test_services_reach_kafka_redis_dns_and_otlp_and_only_blob_store_users_reach_postgres(objs) -> None:
    apps = app_deployments(objs)
    assert {_name(d) for d in apps} >= BLOB_STORE_SERVICES | {"aggregator"}
    for deployment in apps:
        allowed = _reachable(objs, deployment)
        assert {("kafka", 9092), ("redis", 6379), ("dns", 53), ("otlp", 4318)} <= allowed, _name(deployment)
        assert (("postgres", 5432) in allowed) == _uses_blob_store(deployment), _name(deployment)


def test_gateway_egress_is_dns_kafka_redis_otlp_and_the_blob_store_only(objs) -> None:
    gateway = named(objs, "Deployment", "gateway")
    rules = _egress_rules(objs, pod_labels(gateway))
    assert rules
    for rule in rules:
        for peer in rule["to"]:
            assert "ipBlock" not in peer, "the gateway may leave the cluster (provider egress)"
            if "namespaceSelector" in peer:  # cluster DNS and the collector live elsewhere
                assert peer.get("podSelector") in (
                    {"matchLabels": {"k8s-app": "kube-dns"}}, {"matchLabels": COLLECTOR[0]}), peer
    assert _reachable(objs, gateway) == {("dns", 53), ("kafka", 9092), ("redis", 6379),
                                         ("otlp", 4317), ("otlp", 4318), ("postgres", 5432)}
    # Every rule that selects the gateway names one of those destinations and ports.
    ports = {p["port"] for rule in rules for p in rule["ports"]}
    assert ports == {53, 9092, 6379, 4317, 4318, 5432}


def test_gateway_api_is_open_to_the_ingress_controller_and_no_other_service_is(objs) -> None:
    gateway = named(objs, "Deployment", "gateway")
    (api_port,) = [p["containerPort"] for p in gateway["spec"]["template"]["spec"]["containers"][0]["ports"]]
    assert _admitted_ports(objs, pod_labels(gateway), INGRESS_NAMESPACE) == {api_port}
    assert _admitted_ports(objs, pod_labels(gateway), "some-other-namespace") == set()
    for deployment in app_deployments(objs):
        labels = pod_labels(deployment)
        assert _admitted_ports(objs, labels, MONITORING_NAMESPACE) == {8080}, _name(deployment)
        if deployment is not gateway:
            assert _admitted_ports(objs, labels, INGRESS_NAMESPACE) == set(), _name(deployment)


def test_only_blob_store_users_and_the_backup_job_may_connect_to_postgres(objs) -> None:
    postgres = pod_labels(next(s for s in of_kind(objs, "StatefulSet") if "postgres" in s["metadata"]["name"]))
    ingress = [p for p in of_kind(objs, "NetworkPolicy")
               if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], postgres)]
    assert ingress
    for deployment in app_deployments(objs):
        admitted = any(selects(peer.get("podSelector"), pod_labels(deployment))
                       for policy in ingress for rule in policy["spec"].get("ingress", [])
                       for peer in rule.get("from", []))
        assert admitted == _uses_blob_store(deployment), _name(deployment)
    (backup,) = of_kind(objs, "CronJob")
    backup_labels = backup["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert any(selects(peer.get("podSelector"), backup_labels)
               for policy in ingress for rule in policy["spec"].get("ingress", [])
               for peer in rule.get("from", []))
