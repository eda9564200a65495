"""The Kafka ACLs (Strimzi KafkaUsers) say the same as the signature layer: whoever may write a
topic is exactly a role ``modelbus_schemas.topics.writer_roles`` allows there; upstream
tenants write only requests and read only their own reply topics; the audit reads everything
and writes only dead letters; every service logs in as its own user, consumes in groups it is
granted, and mounts the signing key ring. Expectations come from the topic table, not from a
copy of it."""

from __future__ import annotations

import re

import pytest
from modelbus_runtime.signing import KeyRing
from modelbus_schemas.topics import (
    APPROVALS_DECISIONS,
    AUDIT_PATTERN,
    DLQ_SUFFIX,
    GATEWAY,
    PROVIDERS,
    REPLY_TOPIC_PREFIX,
    REQUESTS,
    RESULTS,
    all_topics,
    is_internal,
    tasks_topic,
    writer_roles,
)

from tests.k8s.manifests import (
    app_deployments,
    container_env,
    mounted_source,
    mounted_text,
    named,
    of_kind,
    secret_keys,
)

ROLE_LABEL = "modelbus.io/signing-role"
TENANT_LABEL = "modelbus.io/tenant"


def _matches(resource: dict, rtype: str, name: str) -> bool:
    if resource["type"] != rtype:
        return False
    if resource.get("patternType", "literal") == "prefix":
        return name.startswith(resource["name"])
    return name == resource["name"]


def allows(user: dict, operation: str, rtype: str, name: str) -> bool:
    """Kafka's simple authorizer: an allow ACL on a matching resource (Read and Write imply
    Describe)."""
    implied = {operation} | ({"Read", "Write"} if operation == "Describe" else set())
    return any(_matches(acl["resource"], rtype, name) and implied & set(acl["operations"])
               for acl in user["spec"]["authorization"]["acls"]
               if acl.get("type", "allow") == "allow")


def users(objs) -> list[dict]:
    return of_kind(objs, "KafkaUser")


def role_of(user: dict) -> str | None:
    return user["metadata"]["labels"].get(ROLE_LABEL)


def tenants(objs) -> list[dict]:
    found = [u for u in users(objs) if TENANT_LABEL in u["metadata"]["labels"]]
    assert found, "an example upstream tenant KafkaUser is expected"
    return found


def topics_to_check(objs) -> list[str]:
    """Every topic of the topic table, every topic with a KafkaTopic, and reply topics a
    policy may grant (one for the example tenant, one for somebody else)."""
    declared = [t["spec"]["topicName"] for t in of_kind(objs, "KafkaTopic")]
    replies = [f"{REPLY_TOPIC_PREFIX}{u['metadata']['labels'][TENANT_LABEL]}.billing" for u in tenants(objs)]
    return sorted({*all_topics(), *declared, *replies, f"{REPLY_TOPIC_PREFIX}someone-else.app"})


def test_writers_of_every_signed_topic_are_exactly_its_writer_roles(objs) -> None:
    checked = 0
    for topic in topics_to_check(objs):
        allowed = writer_roles(topic)
        if allowed is None:
            continue
        writers = [u for u in users(objs) if allows(u, "Write", "topic", topic)]
        roles = {role_of(u) for u in writers}
        assert roles == set(allowed), (
            f"{topic}: writable by {sorted(u['metadata']['name'] for u in writers)} "
            f"(roles {sorted(map(str, roles))}), writer_roles says {sorted(allowed)}")
        checked += 1
    assert checked >= len(PROVIDERS) + 5


def test_requests_are_written_by_upstreams_only(objs) -> None:
    """No internal service but the gateway writes requests: only the front doors (the gateway,
    tenants) and ops (redrive) do."""
    writers = {u["metadata"]["name"] for u in users(objs) if allows(u, "Write", "topic", REQUESTS)}
    upstreams = {u["metadata"]["name"] for u in tenants(objs)}
    gateway = {u["metadata"]["name"] for u in users(objs) if role_of(u) == GATEWAY}
    ops = {u["metadata"]["name"] for u in users(objs) if u["metadata"]["labels"].get("modelbus.io/access") == "ops"}
    assert gateway and writers == gateway | upstreams | ops
    for user in users(objs):
        if user["metadata"]["name"] in ops:
            # ops may read DLQs and redrive requests, nothing signed.
            for topic in topics_to_check(objs):
                if allows(user, "Write", "topic", topic):
                    assert writer_roles(topic) is None, topic


def test_tenants_write_requests_only_and_read_only_their_reply_topics(objs) -> None:
    for user in tenants(objs):
        tenant = user["metadata"]["labels"][TENANT_LABEL]
        own = f"{REPLY_TOPIC_PREFIX}{tenant}."
        for topic in topics_to_check(objs):
            assert allows(user, "Write", "topic", topic) == (topic == REQUESTS), topic
            reads = allows(user, "Read", "topic", topic)
            assert reads == topic.startswith(own), f"{tenant} reading {topic}: {reads}"
            if is_internal(topic) and topic != REQUESTS:
                assert not allows(user, "Describe", "topic", topic), topic
        for acl in user["spec"]["authorization"]["acls"]:
            if acl["resource"]["type"] == "group":
                assert acl["resource"]["name"].startswith(f"{tenant}-"), acl
        assert not any(acl["resource"]["type"] in {"cluster", "transactionalId"}
                       for acl in user["spec"]["authorization"]["acls"])


def test_audit_reads_everything_and_writes_only_dead_letters(objs) -> None:
    (audit,) = [u for u in users(objs) if role_of(u) == "audit"]
    for topic in topics_to_check(objs):
        assert allows(audit, "Read", "topic", topic), topic
        if not topic.endswith(DLQ_SUFFIX):
            assert not allows(audit, "Write", "topic", topic), topic
    for topic in of_kind(objs, "KafkaTopic"):
        name = topic["spec"]["topicName"]
        consumed = re.match(AUDIT_PATTERN, name.removesuffix(DLQ_SUFFIX))
        if topic["metadata"]["labels"].get("modelbus.io/topic-kind") == "dlq" and consumed:
            assert allows(audit, "Write", "topic", name), name


def test_each_worker_reads_only_its_own_provider(objs) -> None:
    workers = {u["metadata"]["labels"].get("modelbus.io/provider"): u
               for u in users(objs) if role_of(u) == "adapter-worker"}
    assert set(workers) == set(PROVIDERS)
    for provider, user in workers.items():
        for other in PROVIDERS:
            assert allows(user, "Read", "topic", tasks_topic(other)) == (other == provider)
        assert allows(user, "Write", "topic", RESULTS)


def _login(objs, deployment: dict) -> dict:
    """The KafkaUser a Deployment logs in as, after checking the credentials wiring."""
    env = container_env(objs, deployment)
    assert env["MODELBUS_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["MODELBUS_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    user = named(objs, "KafkaUser", env["MODELBUS_KAFKA_SASL_USERNAME"])
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    (password,) = [v for v in container["env"] if v["name"] == "MODELBUS_KAFKA_SASL_PASSWORD"]
    assert password["valueFrom"]["secretKeyRef"] == {"name": user["metadata"]["name"], "key": "password"}
    return user


def test_every_service_logs_in_as_a_user_of_its_own_role(objs) -> None:
    deployments = app_deployments(objs)
    assert len(deployments) == 4 + len(PROVIDERS)
    logins = set()
    for deployment in deployments:
        user = _login(objs, deployment)
        # The component is the name run_service signs as (router, adapter-worker, ...).
        assert role_of(user) == deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        logins.add(user["metadata"]["name"])
    assert len(logins) == len(deployments), "no two Deployments share a Kafka user"


@pytest.mark.parametrize(("component", "topics", "groups"), [
    # Group names as the services use them (router app.py, AggregatorSettings, AuditSettings).
    ("router", [REQUESTS, APPROVALS_DECISIONS], ["modelbus-router", "modelbus-router-approvals"]),
    ("aggregator", [RESULTS], ["modelbus-aggregator"]),
    ("audit", all_topics(), ["modelbus-audit"]),
])
def test_services_consume_their_topics_in_their_groups(objs, component, topics, groups) -> None:
    (deployment,) = [d for d in app_deployments(objs)
                     if d["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    user = _login(objs, deployment)
    for topic in topics:
        assert allows(user, "Read", "topic", topic), topic
    for group in groups:
        assert allows(user, "Read", "group", group), group


def test_workers_and_gateway_consume_what_they_are_configured_to(objs) -> None:
    for so in of_kind(objs, "ScaledObject"):
        meta = so["spec"]["triggers"][0]["metadata"]
        user = _login(objs, named(objs, "Deployment", so["spec"]["scaleTargetRef"]["name"]))
        assert allows(user, "Read", "topic", meta["topic"]) and allows(user, "Read", "group", meta["consumerGroup"])
    (gateway,) = [d for d in app_deployments(objs) if d["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"]
    reply_topic = container_env(objs, gateway)["MODELBUS_REPLY_TOPIC"]
    assert allows(_login(objs, gateway), "Read", "topic", reply_topic)


def test_every_service_mounts_the_signing_key_ring(overlay: str, objs) -> None:
    keys = secret_keys(objs)
    for deployment in app_deployments(objs):
        path = container_env(objs, deployment)["MODELBUS_SIGNING_KEYS_FILE"]
        volume, key = mounted_source(deployment, path)
        name = volume["secret"]["secretName"]
        assert name.startswith("modelbus-signing-keys") and key in keys[name], deployment["metadata"]["name"]
        text = mounted_text(objs, deployment, path)
        if overlay == "prod":
            # From the secret manager, never from git.
            assert text is None
            assert named(objs, "ExternalSecret", name)["spec"]["data"][0]["secretKey"] == key
        else:
            assert KeyRing.parse(text).active_kid
