"""Monitoring that works on a stock kube-prometheus-stack: the Strimzi Kafka exporter (whose
series the lag and dead-letter alerts use) is scraped by a PodMonitor that selects the pod
Strimzi creates, with the exporter enabled for modelbus topics and groups; every Prometheus
Operator object carries the label the chart's default selectors want; the dashboard reaches
Grafana's sidecar. What the rules and the dashboard query is checked against the services'
real /metrics in tests/observability/test_observability_rules.py.
"""

from __future__ import annotations

import json
import re

from modelbus_schemas.topics import all_topics

from tests.k8s.manifests import named, of_kind

#: kube-prometheus-stack's default selectors: release=<Helm release name>.
RELEASE = {"release": "kube-prometheus-stack"}
#: The port name and labels Strimzi gives its Kafka exporter pod (<cluster>-kafka-exporter).
EXPORTER_PORT = "tcp-prometheus"


def _exporter_pod_labels(cluster: str) -> dict[str, str]:
    return {"strimzi.io/cluster": cluster, "strimzi.io/kind": "Kafka",
            "strimzi.io/name": f"{cluster}-kafka-exporter",
            "strimzi.io/component-type": "kafka-exporter"}


def test_kafka_exporter_is_scraped_by_a_pod_monitor(objs) -> None:
    (kafka,) = of_kind(objs, "Kafka")
    cluster = kafka["metadata"]["name"]
    exporter = kafka["spec"]["kafkaExporter"]
    assert all(re.fullmatch(exporter["topicRegex"], t) for t in all_topics())
    assert re.fullmatch(exporter["groupRegex"], "modelbus-worker-openai")
    (monitor,) = of_kind(objs, "PodMonitor")
    labels = _exporter_pod_labels(cluster)
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert monitor["spec"].get("namespaceSelector") is None, "the exporter runs beside it"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == EXPORTER_PORT and endpoint["path"] == "/metrics"


def test_exporter_alerts_use_the_exporter_metrics(objs) -> None:
    (rule,) = of_kind(objs, "PrometheusRule")
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "kafka_topic_partition_current_offset" in alerts["ModelbusDeadLetters"]
    assert "kafka_consumergroup_lag" in alerts["ModelbusConsumerLagHigh"]


def test_prometheus_operator_objects_carry_the_default_selector_label(objs) -> None:
    kinds = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    found = [o for o in objs if o["kind"] in kinds]
    assert {o["kind"] for o in found} == kinds
    for obj in found:
        labels = obj["metadata"].get("labels", {})
        assert RELEASE.items() <= labels.items(), f"{obj['kind']} {obj['metadata']['name']}"


def test_policy_and_gateway_alerts_exist(objs) -> None:
    (rule,) = of_kind(objs, "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"ModelbusPolicyReloadRefused", "ModelbusPolicyVersionsDiverge",
            "ModelbusGatewayErrors", "ModelbusGatewayLatencyHigh"} <= alerts


def test_dashboard_reaches_grafana_through_the_sidecar_label(objs) -> None:
    configmap = named(objs, "ConfigMap", "modelbus-grafana-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["modelbus.json"])
    titles = " ".join(p["title"] for p in dashboard["panels"])
    assert "Gateway" in titles and "Policy version" in titles
