"""The Grafana dashboard and the alert rules only query metrics the services export."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "k8s/base/monitoring/grafana-dashboard.json"
RULES = ROOT / "k8s/base/monitoring/prometheusrule.yaml"
SERVICE_MODULES = [
    "modelbus_router.app", "modelbus_adapter_worker.app", "modelbus_adapter_worker.telemetry",
    "modelbus_aggregator.app", "modelbus_aggregator.metrics", "modelbus_audit.app",
    "modelbus_gateway.app", "modelbus_runtime.consumer", "modelbus_runtime.dlq",
    "modelbus_runtime.budgets",
]
METRIC = re.compile(r"\b(modelbus_[a-z_]+)")


def exported() -> set[str]:
    for module in SERVICE_MODULES:
        importlib.import_module(module)
    names = set()
    for family in REGISTRY.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"],
                    "gauge": [""], "summary": ["_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + s for s in suffixes}
    return names


def test_dashboard_is_valid_json_and_every_query_names_an_exported_metric():
    dashboard = json.loads(DASHBOARD.read_text())
    known = exported()
    assert dashboard["panels"], "the dashboard has panels"
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = METRIC.findall(target["expr"])
            assert names, f"{panel['title']}: query names no modelbus metric"
            unknown = [n for n in names if n not in known]
            assert not unknown, f"{panel['title']}: {unknown} is not exported by any service"


def test_alert_rules_cover_errors_budget_dlq_and_lag_with_exported_metrics():
    rules = [r for doc in yaml.safe_load_all(RULES.read_text()) if doc
             for group in doc["spec"]["groups"] for r in group["rules"]]
    known = exported()
    alerts = {r["alert"]: r["expr"] for r in rules}
    for wanted in ("ModelbusProviderErrorRate", "ModelbusBudgetBurn", "ModelbusDlqGrowth",
                   "ModelbusConsumerLag"):
        assert wanted in alerts, f"missing alert {wanted}"
        names = METRIC.findall(alerts[wanted])
        assert names and all(n in known for n in names), (wanted, names)
