"""The provisioned Grafana dashboard asks only for series that /metrics exposes, and
docker/compose.yaml wires Prometheus and Grafana to it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent.parent
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "voiceroom.json"
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())

# What issue 16 asks the picture of the service to show.
REQUIRED_PANELS = {
    "Participants online",
    "Rooms live",
    "Voice deliveries per second",
    "Voice drops per second, by reason",
    "Event loop lag, p99",
    "Sockets per node",
    "Webhook backlog",
    "Moderation acts",
}


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(?:by|without)\s*\([^)]*\)", "", expr)  # grouping labels
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[match.end() :].lstrip()
        if not rest.startswith("("):  # a function or an aggregation otherwise
            names.add(match.group())
    return names


def test_metric_names_are_found_in_expressions():
    expr = 'histogram_quantile(0.99, sum by (le) (rate(a_b_bucket{x=~"y.*"}[5m]))) / c'
    assert metric_names(expr) == {"a_b_bucket", "c"}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_dashboard_has_every_panel_the_issue_asks_for():
    titles = {p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]}
    assert REQUIRED_PANELS <= titles


@pytest.mark.django_db
def test_dashboard_queries_only_series_the_metrics_endpoint_exposes(client):
    body = client.get("/metrics").content.decode()
    exposed = {
        sample.name for family in text_string_to_metric_families(body) for sample in family.samples
    }
    wanted = set().union(*(metric_names(e) for e in dashboard_exprs()))
    assert wanted, "no metric found in the dashboard"
    assert wanted - exposed == set()


def test_compose_provisions_prometheus_and_grafana_from_the_repository():
    services = COMPOSE["services"]
    prom = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    targets = {
        t for job in prom["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    nodes = {n for n, s in services.items() if s.get("command") == COMPOSE["x-app"]["command"]}
    assert targets == {f"{node}:8000" for node in nodes} == {"app1:8000", "app2:8000"}
    mounts = [v.split(":")[0] for v in services["grafana"]["volumes"] if v.startswith("./")]
    for mount in mounts:
        assert (ROOT / "docker" / mount).exists(), mount
    datasource = yaml.safe_load(
        (ROOT / "docker/grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"][0]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert {p["datasource"]["uid"] for p in panels} == {datasource["uid"]}
