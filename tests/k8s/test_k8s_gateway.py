"""The gateway on Kubernetes: its pod env makes valid GatewaySettings, its API-keys Secret
resolves (dev: the generated digests load and the documented dev key authenticates; prod:
an ExternalSecret provides the key), its reply topic is an existing, replicated KafkaTopic
(so the reply listener never creates a replication-factor-1 topic), its instance id is the
pod name, its Service serves the API and the metrics port, and its shutdown fits the grace
period. Network rules: test_k8s_network.py; policy mount: test_k8s_policy_config.py."""

from __future__ import annotations

import os
import re

from modelbus_gateway.auth import ApiKeys
from modelbus_gateway.settings import GatewaySettings
from modelbus_schemas.common import TopicName
from modelbus_schemas.topics import AUDIT_PATTERN, dlq_topic
from pydantic import TypeAdapter

from tests.k8s.manifests import (
    container_env,
    mounted_source,
    mounted_text,
    named,
    of_kind,
    pod_labels,
    secret_keys,
    selects,
)

DEV_KEY = "sk-modelbus-dev"  # documented in k8s/overlays/dev/gateway-api-keys.yaml


def _gateway(objs):
    return named(objs, "Deployment", "gateway")


def _container(objs):
    return _gateway(objs)["spec"]["template"]["spec"]["containers"][0]


def _settings(objs, monkeypatch) -> GatewaySettings:
    """The settings the gateway process builds from the pod's environment."""
    for var in [v for v in os.environ if v.startswith("MODELBUS_") or v in {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"}]:
        monkeypatch.delenv(var)
    for name, value in container_env(objs, _gateway(objs)).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODELBUS_INSTANCE_ID", "gateway-7d9f8c6b5-x2kqp")  # the downward API
    return GatewaySettings()


def test_gateway_is_a_modelbus_service_running_the_gateway_image(objs) -> None:
    gateway = _gateway(objs)
    assert pod_labels(gateway)["modelbus.io/role"] == "app"
    assert re.sub(r":.*$", "", _container(objs)["image"]).endswith("modelbus/gateway")


def test_gateway_instance_id_is_the_pod_name(objs) -> None:
    (var,) = [v for v in _container(objs)["env"] if v["name"] == "MODELBUS_INSTANCE_ID"]
    assert var["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_gateway_settings_load_from_the_pod_env(objs, monkeypatch) -> None:
    settings = _settings(objs, monkeypatch)
    ports = {p["name"]: p["containerPort"] for p in _container(objs)["ports"]}
    assert settings.health_port == ports["health"], "the API must be served on the container port"
    assert settings.health_host == "0.0.0.0"
    assert settings.ensure_topics is False
    assert settings.instance_id == "gateway-7d9f8c6b5-x2kqp"
    assert settings.reply_topic and TypeAdapter(TopicName).validate_python(settings.reply_topic)
    assert settings.policy_path and settings.api_keys_file
    assert not settings.api_keys, "API keys belong in the mounted Secret, not in plain env"


def test_gateway_reply_topic_is_an_existing_replicated_kafka_topic(objs, monkeypatch) -> None:
    reply = _settings(objs, monkeypatch).reply_topic
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind(objs, "KafkaTopic")}
    assert reply in topics, "without a KafkaTopic the gateway creates its topic with 1 replica"
    assert dlq_topic(reply) in topics, "the audit dead-letters to <topic>.dlq"
    (kafka,) = of_kind(objs, "Kafka")
    broker_min_isr = kafka["spec"]["kafka"]["config"]["min.insync.replicas"]
    spec = topics[reply]
    # acks=all writes (the aggregator's replies) need replicas >= min.insync.replicas.
    assert spec["replicas"] >= max(broker_min_isr, spec["config"]["min.insync.replicas"])
    assert re.match(AUDIT_PATTERN, reply), "replies must reach the audit lineage"


def test_gateway_api_keys_secret_resolves(objs, overlay: str, tmp_path) -> None:
    path = container_env(objs, _gateway(objs))["MODELBUS_API_KEYS_FILE"]
    volume, key = mounted_source(_gateway(objs), path)
    secret = volume["secret"]["secretName"]
    assert key in secret_keys(objs)[secret], f"{secret} does not provide {key}"
    text = mounted_text(objs, _gateway(objs), path)
    if overlay == "prod":
        assert text is None, "prod API keys must come from the secret manager, not from git"
        (external,) = [e for e in of_kind(objs, "ExternalSecret") if e["spec"]["target"]["name"] == secret]
        assert [d["secretKey"] for d in external["spec"]["data"]] == [key]
        return
    assert text is not None
    assert DEV_KEY not in text, "the Secret holds digests, never keys"
    (tmp_path / key).write_text(text)
    keys = ApiKeys.load([], str(tmp_path / key))
    assert len(keys) >= 1
    caller = keys.caller_for(DEV_KEY)
    assert caller is not None and caller.tenant == "dev"
    assert keys.caller_for("sk-wrong") is None


def test_gateway_service_serves_the_api_and_the_metrics_port(objs) -> None:
    service = named(objs, "Service", "gateway")
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(_gateway(objs)))
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["http"]["targetPort"] == ports["health"]["targetPort"] == "health"
    (monitor,) = of_kind(objs, "ServiceMonitor")
    assert selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= set(ports)


def test_gateway_shutdown_fits_the_grace_period(objs, monkeypatch) -> None:
    """preStop pause, then the drain of calls in flight, before Kubernetes kills the pod."""
    pod = _gateway(objs)["spec"]["template"]["spec"]
    command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    drain = _settings(objs, monkeypatch).drain_timeout_s
    assert int(command[1]) + drain < pod["terminationGracePeriodSeconds"]
