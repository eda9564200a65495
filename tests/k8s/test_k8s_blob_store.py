"""The claim-check blob store in Kubernetes: the gateway, the router, every adapter worker and
the audit read one MODELBUS_BLOB_URL from the Secret modelbus-blob-store (key url), which the
overlay provides and which names the modelbus_blobs database of the in-cluster PostgreSQL;
PostgreSQL creates that database when its volume is initialised. (That those pods may reach
PostgreSQL is in test_k8s_network.py.)"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

from tests.k8s.manifests import app_deployments, named, of_kind, pod_labels, secret_keys

SHARING = {"gateway", "router", "adapter-worker", "audit"}
SECRET = "modelbus-blob-store"


def _blob_url_ref(deployment) -> dict | None:
    env = deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])
    found = [v for v in env if v["name"] == "MODELBUS_BLOB_URL"]
    assert len(found) <= 1, deployment["metadata"]["name"]
    return found[0].get("valueFrom", {}).get("secretKeyRef") if found else None


def _blob_urls(objs) -> list[str]:
    """The url the overlay puts in the Secret: a generated Secret's value or an
    ExternalSecret's template."""
    urls = [base64.b64decode(s["data"]["url"]).decode() for s in of_kind(objs, "Secret")
            if s["metadata"]["name"].startswith(SECRET)]
    urls += [es["spec"]["target"]["template"]["data"]["url"] for es in of_kind(objs, "ExternalSecret")
             if es["spec"]["target"]["name"] == SECRET]
    return urls


def test_every_sharing_service_reads_the_blob_url_from_the_secret(objs) -> None:
    apps = app_deployments(objs)
    sharing = [d for d in apps if pod_labels(d)["app.kubernetes.io/name"] in SHARING]
    assert {pod_labels(d)["app.kubernetes.io/name"] for d in sharing} == SHARING
    assert sum(pod_labels(d)["app.kubernetes.io/name"] == "adapter-worker" for d in sharing) == 4
    keys = secret_keys(objs)
    for deployment in apps:
        ref = _blob_url_ref(deployment)
        if deployment not in sharing:
            assert ref is None, f"{deployment['metadata']['name']} does not need the blob store"
            continue
        assert ref is not None, f"{deployment['metadata']['name']} has no MODELBUS_BLOB_URL from a Secret"
        assert ref["name"].startswith(SECRET) and ref["key"] == "url"
        assert "url" in keys.get(ref["name"], set()), f"no Secret {ref['name']} with key url"


def test_the_blob_url_names_the_blobs_database_of_the_in_cluster_postgres(objs) -> None:
    (url,) = _blob_urls(objs)
    parts = urlsplit(url)
    assert parts.scheme == "postgresql"
    assert parts.hostname == named(objs, "Service", "modelbus-postgres")["metadata"]["name"]
    assert parts.port == 5432 and parts.path == "/modelbus_blobs"


def test_postgres_creates_the_blobs_database_on_first_start(objs) -> None:
    (postgres,) = [s for s in of_kind(objs, "StatefulSet") if "postgres" in s["metadata"]["name"]]
    pod = postgres["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"]
                 if m["mountPath"] == "/docker-entrypoint-initdb.d")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    scripts = named(objs, "ConfigMap", volume["configMap"]["name"])["data"]
    assert any("CREATE DATABASE modelbus_blobs;" in sql for sql in scripts.values())
