"""Settings every service shares, read from the environment (prefix ``MODELBUS_``).

Services subclass :class:`RuntimeSettings` for their own fields. ``KAFKA_BOOTSTRAP_SERVERS``,
``REDIS_URL`` and ``DATABASE_URL`` are also read without the prefix, as most platforms set them.
"""

from __future__ import annotations

import os
import socket

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelbus_runtime.signing import KeyRing, load_ring


def _alias(name: str) -> AliasChoices:
    return AliasChoices(f"MODELBUS_{name}", name)


class RuntimeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELBUS_", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", validation_alias=_alias("KAFKA_BOOTSTRAP_SERVERS")
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias=_alias("REDIS_URL"))
    # Broker authentication (Kubernetes: the service's Strimzi KafkaUser, k8s/base/kafka/users.yaml).
    # PLAINTEXT and no mechanism = none, as on the local broker.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = Field(default=None, repr=False)
    instance_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    log_level: str = "INFO"
    health_host: str = "127.0.0.1"
    health_port: int = Field(default=0, description="0 disables the health/metrics server")

    # Consumer behaviour: these decide per-hop latency; see docs/performance.md. The
    # embedded broker answers a fetch with what it had when the fetch arrived, so a hop
    # costs up to one wait there (bare hop p50 3.0 ms at 5 ms, 5.4 ms at 25 ms); yet 2, 5,
    # 10 and 25 ms gave the pipeline the same added p50 (22-29 ms) while idle polling cost
    # 0.83, 0.69, 0.55 and 0.33 CPU-s/s (bench/fetch_wait_bench.py). Apache Kafka answers a
    # waiting fetch as soon as data arrives.
    fetch_max_wait_ms: int = 25
    # With no records and no work in flight for idle_after_s, a consumer's fetch wait becomes
    # idle_fetch_max_wait_ms (modelbus_runtime.fetchwait): at rest a stack then costs the
    # broker a few fetches a second per consumer instead of 40; the first record after the
    # quiet spell waits up to one idle fetch per idle hop (see docs/performance.md).
    # idle_after_s = 0 never idles.
    idle_fetch_max_wait_ms: int = Field(default=250, gt=0)
    idle_after_s: float = Field(default=2.0, ge=0)
    # ... and after deep_idle_after_s of quiet, deep_idle_fetch_max_wait_ms: a stack at rest
    # for minutes costs the embedded broker about half as much again, the first request
    # after such a spell waits up to one deep wait per hop (0 s: never). On Apache Kafka,
    # whose waiting fetches end when data arrives, every long wait is free.
    deep_idle_fetch_max_wait_ms: int = Field(default=1000, gt=0)
    deep_idle_after_s: float = Field(default=30.0, ge=0)
    max_poll_records: int = 500
    max_in_flight: int = 256
    commit_interval_ms: int = 50
    # A stop (finish in-flight work, commit, leave the group) never takes longer than this.
    drain_timeout_s: float = 20.0
    # On a rebalance, how long in-flight work of the revoked partitions may finish before it
    # is cancelled (and redelivered to the new owner). aiokafka rebalances eagerly: every
    # member revokes everything and the group waits for the slowest member, so this bounds
    # how long a replica joining or leaving stalls the members that stay. A few seconds
    # lets ordinary provider calls finish without re-running them.
    revoke_drain_timeout_s: float = Field(default=3.0, ge=0)
    # How long start-up waits for an unreachable broker, Redis or database before the
    # process exits 1 with a one-line reason (modelbus_runtime.startup).
    startup_timeout_s: float = Field(default=120.0, gt=0)
    max_message_bytes: int = 1_048_576

    # Producer behaviour. No linger: aiokafka's 1 ms linger measured as 2-3 ms more per hop
    # (bench/fetch_wait_bench.py); under load records batch anyway while a produce request
    # is in flight.
    linger_ms: int = 0
    acks: str = "all"

    ensure_topics: bool = True
    topic_partitions: int = 6
    # Replicas of topics this service creates itself (the gateway's reply topic, and all
    # topics on a development broker); production topics come from KafkaTopic resources.
    topic_replication_factor: int = Field(default=1, ge=1)

    redis_socket_timeout_s: float = 0.5

    # Signing keys of internal events (modelbus_runtime.signing): ``kid:secret`` entries,
    # the first signs, all verify. A mounted Secret file wins over the inline value.
    signing_keys: str | None = Field(default=None, repr=False)
    signing_keys_file: str | None = None

    # Claim check (modelbus_runtime.claimcheck): content parts above the threshold travel as
    # references to a blob store: MODELBUS_BLOB_URL (postgresql://, sqlite:///, s3://bucket/
    # prefix), else DATABASE_URL, else a SQLite file every local process shares.
    blob_url: str | None = Field(default=None, repr=False)
    blob_database_url: str | None = Field(default=None, repr=False,
                                          validation_alias=AliasChoices("DATABASE_URL"))
    blob_sqlite_path: str = ".modelbus/blobs.db"
    blob_s3_endpoint_url: str | None = None
    blob_s3_region: str | None = None
    claim_check_threshold_bytes: int = Field(default=512 * 1024, ge=1024)
    # The largest request event the router reads off modelbus.requests.v1: content beyond
    # max_message_bytes is claim-checked before tasks are published; what still does not
    # fit gets a payload_too_large answer. Above this, the request is dead-lettered.
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    def kafka_client_options(self) -> dict[str, object]:
        """Keyword arguments every aiokafka client of this service takes: the bootstrap
        servers and, when configured, the SASL credentials."""
        options: dict[str, object] = {"bootstrap_servers": self.kafka_bootstrap_servers}
        if self.kafka_security_protocol != "PLAINTEXT" or self.kafka_sasl_mechanism:
            options.update(security_protocol=self.kafka_security_protocol,
                           sasl_mechanism=self.kafka_sasl_mechanism or "PLAIN",
                           sasl_plain_username=self.kafka_sasl_username,
                           sasl_plain_password=self.kafka_sasl_password)
        return options

    def signing_ring(self) -> KeyRing:
        ring = self.__dict__.get("_ring")
        if ring is None:
            ring = load_ring(self.signing_keys, self.signing_keys_file)
            self.__dict__["_ring"] = ring
        return ring
