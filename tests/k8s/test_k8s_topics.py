"""Every topic defined in ``modelbus_schemas.topics`` has a Strimzi KafkaTopic (and its DLQ),
the only other KafkaTopics are the gateway's reply topic and its DLQ, and every provider (the default routing policy's and ``PROVIDERS``) has a worker Deployment
configured for it and a KEDA ScaledObject on its task topic's consumer-group lag."""

from __future__ import annotations

from typing import Any

import yaml
from modelbus_router import policy as router_policy
from modelbus_schemas.topics import PROVIDERS, all_topics, dlq_topic, source_topics, tasks_topic

from tests.k8s.manifests import container_env, named, of_kind, pod_labels, selects


def gateway_reply_topics(objs) -> set[str]:
    """The reply topics the gateway Deployments are configured with, and their DLQs."""
    gateways = [d for d in of_kind(objs, "Deployment") if pod_labels(d).get("app.kubernetes.io/name") == "gateway"]
    assert gateways
    replies = {container_env(objs, d)["MODELBUS_REPLY_TOPIC"] for d in gateways}
    return replies | {dlq_topic(t) for t in replies}


def _collect_providers(node: Any, found: set[str]) -> None:
    """Every string under a ``provider`` key, and every entry of a ``providers`` list or map,
    anywhere in the policy: robust to the policy format growing (catalog, fallbacks, tiers)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "provider" and isinstance(value, str):
                found.add(value)
            elif key == "providers" and isinstance(value, (list, dict)):
                found.update(v for v in value if isinstance(v, str))
            _collect_providers(value, found)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _collect_providers(item, found)


def default_policy_providers() -> set[str]:
    found: set[str] = set()
    try:
        _collect_providers(router_policy.load_policy().model_dump(mode="json"), found)
    except (AttributeError, TypeError, ValueError):  # the policy API changed: read the YAML
        found.clear()
    if not found:
        _collect_providers(yaml.safe_load(router_policy.DEFAULT_POLICY_PATH.read_text()), found)
    return found


def test_the_default_policy_names_providers() -> None:
    providers = default_policy_providers()
    assert providers, "no provider found in the default policy"
    assert providers <= set(PROVIDERS)


def test_every_schema_topic_has_a_kafka_topic_and_a_dlq(objs) -> None:
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(objs, "KafkaTopic")}
    missing = [t for t in all_topics() if t not in topics]
    assert not missing, f"KafkaTopic missing for {missing}"
    extra = set(topics) - set(all_topics())
    assert extra == gateway_reply_topics(objs), "a KafkaTopic names a topic the schemas do not know"
    for source in source_topics():
        dlq = topics[dlq_topic(source)]
        retention = int(topics[source]["config"]["retention.ms"])
        assert int(dlq["config"]["retention.ms"]) > retention, f"{source}: DLQ keeps less than its source"


def test_every_provider_has_a_worker_deployment_and_a_scaled_object(objs) -> None:
    providers = default_policy_providers() | set(PROVIDERS)
    workers = [d for d in of_kind(objs, "Deployment") if pod_labels(d).get("app.kubernetes.io/name") == "adapter-worker"]
    by_provider = {container_env(objs, d)["MODELBUS_PROVIDER"]: d for d in workers}
    assert len(by_provider) == len(workers), "two worker Deployments serve one provider"
    for provider in sorted(providers):
        deployment = by_provider.get(provider)
        assert deployment is not None, f"no adapter-worker Deployment for {provider}"
        env = container_env(objs, deployment)
        assert env["MODELBUS_BASE_URL"].startswith(("http://", "https://"))
        api_key = next(v for v in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
                       if v["name"] == "MODELBUS_API_KEY")
        assert provider in api_key["valueFrom"]["secretKeyRef"]["name"]
        name = deployment["metadata"]["name"]
        scaled = [s for s in of_kind(objs, "ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == name]
        assert len(scaled) == 1, f"{provider}: {len(scaled)} ScaledObjects target {name}"
        trigger = scaled[0]["spec"]["triggers"][0]["metadata"]
        assert trigger["topic"] == tasks_topic(provider)
        # The group the worker consumes in: modelbus_adapter_worker.app.build.
        assert trigger["consumerGroup"] == f"modelbus-worker-{provider}"


def test_gateway_router_and_aggregator_scale_on_cpu(objs) -> None:
    for service in ("gateway", "router", "aggregator"):
        hpa = named(objs, "HorizontalPodAutoscaler", service)
        target = named(objs, "Deployment", hpa["spec"]["scaleTargetRef"]["name"])
        assert pod_labels(target)["app.kubernetes.io/name"] == service
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_worker_services_select_only_their_provider(objs) -> None:
    workers = [d for d in of_kind(objs, "Deployment") if pod_labels(d).get("app.kubernetes.io/name") == "adapter-worker"]
    for service in of_kind(objs, "Service"):
        hits = [d for d in workers if selects({"matchLabels": service["spec"]["selector"]}, pod_labels(d))]
        assert len(hits) <= 1, f"Service {service['metadata']['name']} spans {len(hits)} worker Deployments"
