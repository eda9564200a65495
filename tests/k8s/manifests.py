"""Rendering and reading the Kustomize overlays under k8s/ for the tests in this folder.

Renders with ``kubectl kustomize`` (kubectl from PATH, ``$KUBECTL``, or the copy
``.ci/k8s-tools.sh`` caches) and offers small helpers over the rendered objects: find by
kind and name, pod labels, label-selector matching, the env a container will see, the
Secret keys an overlay provides, the file a container sees at a mounted path.
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
CACHED_KUBECTL = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "modelbus-k8s-tools/bin/kubectl"

Obj = dict


def kubectl() -> str:
    """Path of kubectl; fails with the fix when it is missing."""
    for candidate in (os.environ.get("KUBECTL"), shutil.which("kubectl"), str(CACHED_KUBECTL)):
        if candidate and Path(candidate).exists():
            return candidate
    raise AssertionError("kubectl not found: run `bash .ci/k8s-tools.sh` (it installs one)")


@functools.cache
def render(overlay: str) -> tuple[Obj, ...]:
    """Every object ``kubectl kustomize k8s/overlays/<overlay>`` prints."""
    proc = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize {overlay} failed:\n{proc.stderr}"
    return tuple(o for o in yaml.safe_load_all(proc.stdout) if o)


def of_kind(objs: tuple[Obj, ...], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def named(objs: tuple[Obj, ...], kind: str, name: str) -> Obj:
    found = [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
    return found[0]


def pod_labels(workload: Obj) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def selects(selector: dict | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if selector is None:
        return False
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pod_templates(objs: tuple[Obj, ...]) -> list[tuple[str, Obj]]:
    """(workload name, pod template) of every Deployment, StatefulSet and CronJob."""
    found = [(w["metadata"]["name"], w["spec"]["template"])
             for w in of_kind(objs, "Deployment") + of_kind(objs, "StatefulSet")]
    found += [(c["metadata"]["name"], c["spec"]["jobTemplate"]["spec"]["template"])
              for c in of_kind(objs, "CronJob")]
    return found


def app_deployments(objs: tuple[Obj, ...]) -> list[Obj]:
    """The modelbus service Deployments (label modelbus.io/role=app)."""
    return [d for d in of_kind(objs, "Deployment")
            if d["metadata"].get("labels", {}).get("modelbus.io/role") == "app"]


def container_env(objs: tuple[Obj, ...], deployment: Obj) -> dict[str, str]:
    """The plain env the first container sees: envFrom ConfigMaps, then env values and
    configMapKeyRefs resolved (secret values are left out)."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(named(objs, "ConfigMap", source["configMapRef"]["name"]).get("data", {}))
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        ref = var.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            env[var["name"]] = named(objs, "ConfigMap", ref["name"])["data"][ref["key"]]
    return env


#: Keys of the Secret Strimzi's User Operator writes for a KafkaUser (named like the user).
KAFKA_USER_SECRET_KEYS = {
    "scram-sha-512": {"password", "sasl.jaas.config"},
    "tls": {"ca.crt", "user.crt", "user.key", "user.p12", "user.password"},
}


def secret_keys(objs: tuple[Obj, ...]) -> dict[str, set[str]]:
    """Secret name -> its keys, for Secrets in the render and those ExternalSecrets and the
    Strimzi User Operator (one per KafkaUser) create."""
    keys = {s["metadata"]["name"]: set(s.get("data", {})) | set(s.get("stringData", {}))
            for s in of_kind(objs, "Secret")}
    for es in of_kind(objs, "ExternalSecret"):
        target = es["spec"]["target"]
        assert es["spec"]["secretStoreRef"]["name"]
        template = target.get("template", {}).get("data")
        keys[target["name"]] = set(template) if template else {d["secretKey"] for d in es["spec"]["data"]}
    for user in of_kind(objs, "KafkaUser"):
        keys[user["metadata"]["name"]] = KAFKA_USER_SECRET_KEYS[user["spec"]["authentication"]["type"]]
    return keys


def mounted_source(deployment: Obj, path: str) -> tuple[dict, str]:
    """The pod volume holding the file at ``path`` in the first container, and the key of the
    ConfigMap/Secret that becomes that file (``items`` mappings honoured)."""
    pod = deployment["spec"]["template"]["spec"]
    file = PurePosixPath(path)
    mount = next((m for m in pod["containers"][0].get("volumeMounts", [])
                  if file.parent == PurePosixPath(m["mountPath"])), None)
    assert mount is not None, f"nothing is mounted at {file.parent}"
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    source = volume.get("configMap") or volume.get("secret") or {}
    items = {i["path"]: i["key"] for i in source.get("items", [])}
    return volume, items.get(file.name, file.name)


def mounted_text(objs: tuple[Obj, ...], deployment: Obj, path: str) -> str | None:
    """The content of the file at ``path`` when its source is in the render (a ConfigMap or a
    generated Secret); None when the Secret comes from outside (an ExternalSecret)."""
    volume, key = mounted_source(deployment, path)
    if "configMap" in volume:
        return named(objs, "ConfigMap", volume["configMap"]["name"])["data"][key]
    name = volume["secret"]["secretName"]
    found = [s for s in of_kind(objs, "Secret") if s["metadata"]["name"] == name]
    if not found:
        return None
    if key in found[0].get("stringData", {}):
        return found[0]["stringData"][key]
    return base64.b64decode(found[0]["data"][key]).decode()
