"""The alert rules and the dashboard, as rendered for the cluster, query only what exists.

The prod overlay is rendered (``kubectl kustomize``); every expression of its PrometheusRule
and of the dashboard ConfigMap is parsed (promql-parser) and each metric, matcher label,
matched value and grouping label is checked against what the services really export: a
stack (router, aggregator, audit, a worker per provider, gateway) runs, takes traffic
(requests on Kafka and through the gateway, a retried 503, a poison record, a wrong key),
and its /metrics are scraped. Metrics of other exporters (the Strimzi Kafka exporter that the
PodMonitor scrapes, Prometheus's own ``up``) are declared below with their labels. The rules
also pass ``promtool check rules`` and promtool unit tests that make the Kafka-exporter,
policy and gateway alerts fire from series shaped like the real ones.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import uuid

import httpx
import pytest
import yaml
from modelbus_gateway.auth import hash_key
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_stack
from tests.k8s.manifests import named, of_kind, render
from tests.observability.promql_refs import refs
from tests.observability.traffic import drive_request_path

#: Labels Prometheus adds to every series it scrapes through the ServiceMonitor/PodMonitor
#: (targetLabels adds provider); le and quantile come with histograms and summaries.
TARGET_LABELS = {"job", "instance", "pod", "namespace", "service", "endpoint", "container",
                 "provider"}
SERIES_LABELS = {"le", "quantile"}
#: Series from other exporters: Strimzi's Kafka exporter (kafka_exporter), kube-state-metrics
#: (kube-prometheus-stack), Prometheus itself.
EXTERNAL = {
    "kafka_topic_partition_current_offset": {"topic", "partition"},
    "kafka_consumergroup_lag": {"consumergroup", "topic", "partition"},
    "kube_cronjob_status_last_successful_time": {"namespace", "cronjob"},
    "up": set(),
}
#: Python modules whose metrics the services register (for families without a sample yet).
SERVICE_MODULES = ["modelbus_router.app", "modelbus_adapter_worker.app",
                   "modelbus_aggregator.app", "modelbus_audit.app", "modelbus_gateway.app"]
SUFFIXES = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"],
            "gauge": [""], "summary": ["_sum", "_count", "_created"], "info": ["_info"]}
GATEWAY_KEY = "sk-rules-" + uuid.uuid4().hex


class Exported:
    """Sample names with their label names and the label values seen, over every service."""

    def __init__(self) -> None:
        self.labels: dict[str, set[str]] = {}
        self.values: dict[tuple[str, str], set[str]] = {}
        self.sampled: set[str] = set()

    def add_scrape(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            for suffix in SUFFIXES.get(family.type, [""]):
                self.labels.setdefault(family.name + suffix, set())
            for sample in family.samples:
                self.sampled.add(sample.name)
                self.labels.setdefault(sample.name, set()).update(sample.labels)
                for label, value in sample.labels.items():
                    self.values.setdefault((sample.name, label), set()).add(value)

    def add_declared_labels(self) -> None:
        """Label names of families that had no sample in the scrape, from their collectors."""
        import importlib
        for module in SERVICE_MODULES:
            importlib.import_module(module)
        for name, collector in list(REGISTRY._names_to_collectors.items()):
            if name in self.labels and not self.labels[name]:
                self.labels[name] = set(getattr(collector, "_labelnames", ()))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, kafka_bootstrap, redis_url) -> Exported:
    workdir = tmp_path_factory.mktemp("rules")
    stack = start_stack(workdir, kafka_bootstrap, redis_url,
                        f"sqlite+aiosqlite:///{workdir / 'audit.db'}")
    try:
        entry = {"key_sha256": hash_key(GATEWAY_KEY), "tenant": "acme", "team": "support",
                 "user": "rules"}
        stack.start_service("gateway", "modelbus_gateway.app",
                            {"MODELBUS_API_KEYS": json.dumps([entry])})
        stack.wait_ready(names=["gateway"])
        asyncio.run(_traffic(stack))
        found = Exported()
        for url in stack.health.values():
            found.add_scrape(httpx.get(url + "/metrics", timeout=10).text)
        found.add_declared_labels()
        return found
    finally:
        stack.stop()


async def _traffic(stack) -> None:
    await drive_request_path(stack, "rules", count=4)
    async with httpx.AsyncClient(timeout=30) as http:
        gateway = stack.health["gateway"]
        body = {"model": "summarize", "messages": [{"role": "user", "content": "hello"}]}
        ok = await http.post(f"{gateway}/v1/chat/completions", json=body,
                             headers={"authorization": f"Bearer {GATEWAY_KEY}"})
        assert ok.status_code == 200, ok.text
        denied = await http.post(f"{gateway}/v1/chat/completions", json=body,
                                 headers={"authorization": "Bearer wrong-key"})
        assert denied.status_code == 401
    await asyncio.sleep(1.5)  # lag gauges refresh once a second


def _expressions() -> list[tuple[str, str]]:
    """(where, expression) of every alert and dashboard query in the rendered prod overlay."""
    objs = render("prod")
    (rule,) = of_kind(objs, "PrometheusRule")
    found = [(f"alert {r['alert']}", r["expr"]) for g in rule["spec"]["groups"] for r in g["rules"]]
    dashboard = json.loads(named(objs, "ConfigMap", "modelbus-grafana-dashboard")["data"]["modelbus.json"])
    found += [(f"panel {p['title']!r}", t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
    return found


EXPRESSIONS = _expressions()


def _labels_of(exported: Exported, metric: str) -> set[str] | None:
    if metric in EXTERNAL:
        return EXTERNAL[metric] | TARGET_LABELS
    if metric in exported.labels:
        return exported.labels[metric] | TARGET_LABELS | SERIES_LABELS
    return None


def problems(exported: Exported, expr: str) -> list[str]:
    """What in ``expr`` does not exist in what the services export (empty: all good)."""
    found, out = refs(expr), []
    if not found.selectors:
        out.append("selects no metric")
    for selector in found.selectors:
        labels = _labels_of(exported, selector.metric)
        if labels is None:
            out.append(f"nothing exports {selector.metric}")
            continue
        for label, op, value in selector.matchers:
            seen = exported.values.get((selector.metric, label))
            if label not in labels:
                out.append(f"{selector.metric} has no label {label!r}")
            elif op in ("=", "!=") and seen and value not in seen:  # a typo never matches
                out.append(f"{selector.metric}{{{label}}} is never {value!r} (seen: {sorted(seen)})")
    for grouping in found.groupings:
        available = set().union(*(_labels_of(exported, s.metric) or set() for s in grouping.selectors))
        if missing := set(grouping.labels) - available:
            out.append(f"groups by {sorted(missing)}, which its metrics do not carry")
    return out


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_expression_names_exported_metrics_and_labels(exported: Exported, where: str, expr: str):
    assert problems(exported, expr) == [], where


@pytest.mark.parametrize("wrong", [
    "sum(rate(modelbus_provider_call_total[5m]))",                    # metric name typo
    'sum(rate(modelbus_provider_calls_total{outcom="ok"}[5m]))',      # label typo
    'sum(rate(modelbus_provider_calls_total{outcome="success"}[5m]))',  # value never exported
    "sum by (team) (modelbus_consumer_lag)",                          # label of another metric
    "sum by (consumer_group) (kafka_consumergroup_lag)",              # exporter label typo
])
def test_the_check_finds_what_does_not_exist(exported: Exported, wrong: str):
    assert problems(exported, wrong), wrong


def test_every_service_family_the_rules_need_was_really_scraped(exported: Exported):
    """Not only declared: the alert metrics of the services had samples in the scrape."""
    for name in ("modelbus_provider_calls_total", "modelbus_dlq_messages_total",
                 "modelbus_consumer_lag", "modelbus_gateway_calls_total",
                 "modelbus_gateway_call_seconds_bucket", "modelbus_policy_info",
                 "modelbus_policy_reload_refused"):
        assert name in exported.sampled, f"{name} had no sample"


def _alert_annotations() -> list[tuple[str, str, str]]:
    (rule,) = of_kind(render("prod"), "PrometheusRule")
    return [(r["alert"], r["expr"], text) for g in rule["spec"]["groups"] for r in g["rules"]
            for text in r.get("annotations", {}).values()]


def test_annotations_name_only_labels_their_alert_keeps():
    for alert, expr, text in _alert_annotations():
        found = refs(expr)
        kept = set().union(*(g.labels for g in found.groupings)) if found.groupings else (
            set().union(*(EXTERNAL.get(s.metric, set()) for s in found.selectors)) | TARGET_LABELS)
        for label in re.findall(r"\$labels\.(\w+)", text):
            assert label in kept, f"{alert}: annotation uses $labels.{label}, not in {kept}"


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool not found: run `bash .ci/k8s-tools.sh` (Debian package prometheus)"
    return found


def test_rules_pass_promtool_check_rules(tmp_path):
    (rule,) = of_kind(render("prod"), "PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    checked = subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True,
                             text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in rule['spec']['groups'])} rules found" in checked.stdout


#: Series shaped like the real ones (the exporter's and services' label names) and what each
#: alert must say when it fires: (alert, evaluation time, labels, rendered annotations).
INPUT_SERIES = [
    ('kafka_topic_partition_current_offset{topic="modelbus.tasks.openai.v1.dlq", partition="0"}',
     "10 10 12 12 12"),
    ('kafka_consumergroup_lag{consumergroup="modelbus-worker-openai", topic="modelbus.tasks.openai.v1", partition="0"}',
     "6000x20"),
    ('modelbus_policy_reload_refused{job="router", pod="router-1"}', "0 1x10"),
    ('modelbus_gateway_calls_total{status="504", job="gateway"}', "0+10x20"),
    ('modelbus_gateway_calls_total{status="200", job="gateway"}', "0+10x20"),
    # last success at t=0, then none: 26 h later plus the 30 m of "for", the alert fires
    ('kube_cronjob_status_last_successful_time{namespace="modelbus", cronjob="modelbus-postgres-backup"}',
     "0x2000"),
]
FIRING = [
    ("ModelbusDeadLetters", "3m", {"topic": "modelbus.tasks.openai.v1.dlq"},
     {"summary": "Messages dead-lettered on modelbus.tasks.openai.v1.dlq"}),
    ("ModelbusConsumerLagHigh", "15m",
     {"consumergroup": "modelbus-worker-openai", "topic": "modelbus.tasks.openai.v1"},
     {"summary": "modelbus-worker-openai is 6000 messages behind on modelbus.tasks.openai.v1"}),
    ("ModelbusPolicyReloadRefused", "8m", {"job": "router", "pod": "router-1"},
     {"summary": "router router-1 refused its policy file and serves the last good version"}),
    ("ModelbusGatewayErrors", "16m", {}, {"summary": "50% of gateway calls end in a 5xx"}),
    ("ModelbusAuditBackupMissing", "1600m", {"namespace": "modelbus", "cronjob": "modelbus-postgres-backup"},
     {"summary": "No successful audit database backup in 1d 2h 40m 0s (modelbus)",
      "description": "kubectl -n modelbus get jobs -l app.kubernetes.io/name=postgres-backup; "
                     "logs of the last failed Job. docs/backup.md."}),
]


def test_exporter_policy_and_gateway_alerts_fire_on_real_shaped_series(tmp_path):
    """promtool test rules: the series carry the labels the exporters and services use."""
    (rule,) = of_kind(render("prod"), "PrometheusRule")
    rules = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    cases = [{"eval_time": at, "alertname": alert, "exp_alerts": [{
        "exp_labels": {**rules[alert]["labels"], **labels},
        "exp_annotations": {**rules[alert]["annotations"], **rendered}}]}
        for alert, at, labels, rendered in FIRING]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yaml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "alert_rule_test": cases,
                   "input_series": [{"series": k, "values": v} for k, v in INPUT_SERIES]}]}))
    tested = subprocess.run([_promtool(), "test", "rules", "tests.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
