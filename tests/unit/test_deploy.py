"""deploy/: the alert rules pass promtool's checks and their unit tests, every dashboard and
alert query parses and names only metrics the processes export, and the Grafana provisioning
points the dashboards at the provisioned datasource."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from streams.metrics import SummarizerMetrics, WorkerMetrics
from tests.deploy_files import (
    ALERT_TESTS,
    ALERTS,
    GRAFANA_PROVISIONING,
    PROMETHEUS_CONFIG,
    alert_expressions,
    alert_rules,
    binary,
    dashboard_expressions,
    dashboard_panels,
    dashboards,
    job_names,
    underlying,
)

SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def promtool(*args: str | Path) -> str:
    """Run promtool; a failure shows its whole output."""
    done = subprocess.run(
        [binary("promtool"), *map(str, args)], capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{output}"
    return output


def exported_names() -> set[str]:
    """Every series name the worker and the summarizer can export."""
    names = {"up"}
    registries = [
        WorkerMetrics(CollectorRegistry()).registry,
        SummarizerMetrics(CollectorRegistry(), "extractive").registry,
    ]
    for registry in registries:
        for family in registry.collect():
            names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
    return names


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    assert "SUCCESS: 9 rules found" in promtool("check", "rules", ALERTS)
    assert "SUCCESS" in promtool("test", "rules", ALERT_TESTS)
    assert "is valid prometheus config" in promtool("check", "config", PROMETHEUS_CONFIG)


def test_every_alert_has_a_unit_test_firing_and_one_not_firing() -> None:
    cases = [
        case
        for test in yaml.safe_load(ALERT_TESTS.read_text("utf-8"))["tests"]
        for case in test["alert_rule_test"]
    ]
    for rule in alert_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']} never fires in a test"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']}: no quiet case"
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_alerts_compare_a_vector_with_a_threshold(tmp_path: Path) -> None:
    """The Prometheus test evaluates each alert's vector (`underlying`); it must be one."""
    for name, expr in alert_expressions():
        assert underlying(expr) != expr, f"{name}: no threshold comparison at the top: {expr}"


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """promtool parses PromQL only in rule files, so each query becomes a recording rule."""
    queries = dashboard_expressions()
    rules = [{"record": f"dashboard:query{i}", "expr": expr} for i, (_, expr) in enumerate(queries)]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(queries)} rules found" in promtool("check", "rules", path)


def test_queries_name_only_metrics_the_processes_export() -> None:
    exported = exported_names()
    for where, expr in [*dashboard_expressions(), *alert_expressions()]:
        without_labels = re.sub(r"\{[^}]*\}", "", expr)
        for name in re.findall(r"\b(tokenbudget_[a-z_]+|up)\b", without_labels):
            assert name in exported, f"{where}: {name} is not exported by any process"
    for name in exported - {"up"}:  # and every metric is shown or alerted on somewhere
        base = re.sub(r"_(bucket|count|sum|total)$", "", name)
        everywhere = " ".join(e for _, e in [*dashboard_expressions(), *alert_expressions()])
        assert base in everywhere, f"{name} is exported but neither charted nor alerted on"


def test_dashboards_use_the_provisioned_datasource_and_cover_the_operations() -> None:
    datasources = yaml.safe_load(
        (GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text("utf-8")
    )["datasources"]
    uids = {d["uid"] for d in datasources}
    providers = yaml.safe_load(
        (GRAFANA_PROVISIONING / "dashboards" / "tokenbudget.yml").read_text("utf-8")
    )["providers"]
    assert [p["options"]["path"] for p in providers] == ["/var/lib/grafana/dashboards"]
    assert dashboards(), "no dashboard JSON"
    for name, dashboard in dashboards().items():
        assert dashboard["uid"] and dashboard["title"], name
        ids = [panel["id"] for where, panel in dashboard_panels() if where == name]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
    titles = []
    for name, panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        titles.append(panel["title"].lower())
        assert panel["datasource"]["uid"] in uids, f"{name}: {panel['title']}"
        assert panel["targets"], f"{name}: {panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids, f"{name}: {panel['title']}"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{name}: {panel['title']} is wider than the grid"
    for topic in (
        "utilization distribution",
        "sessions by alert level",
        "actions by rule",
        "tokens counted by component",
        "latency",
        "dead letters",
        "summarizer",
    ):
        assert any(topic in title for title in titles), f"no panel on {topic}"


def test_the_compose_prometheus_scrapes_the_jobs_the_alerts_name() -> None:
    jobs = job_names()
    for name, expr in alert_expressions():
        for job in re.findall(r'job="([^"]+)"', expr):
            assert job in jobs, f"{name} names job {job!r}, which prometheus.yml does not scrape"
    assert {"tokenbudget-worker", "tokenbudget-summarizer"} <= set(jobs)
