"""The Grafana dashboard is valid, every panel queries something, and every query parses.

Whether each query names metrics and labels the services really export is checked against a
running stack's /metrics in test_observability_rules.py (rules and dashboard alike)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.observability.promql_refs import refs

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "k8s/base/monitoring/grafana-dashboard.json"


def test_dashboard_is_valid_json_and_every_query_parses():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"], "the dashboard has panels"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert refs(target["expr"]).selectors, f"{panel['title']}: query selects no metric"


def test_dashboard_covers_the_request_path_the_gateway_and_the_policy():
    titles = " | ".join(p["title"] for p in json.loads(DASHBOARD.read_text())["panels"])
    for wanted in ("Requests/s", "End-to-end latency", "Provider error rate", "Consumer lag",
                   "Dead-lettered", "Gateway calls/s", "Gateway latency", "Policy version"):
        assert wanted in titles, f"no panel on {wanted}"
