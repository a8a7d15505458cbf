"""What the tests read from deploy/: the PromQL of the dashboards and the alert rules, the
Prometheus job names, and the Prometheus binaries (a missing one fails the test, never skips)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY = REPO_ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "tests" / "alerts_test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"

# A comparison with a number at the top of an expression: `<vector> > 0.2`, `up{…} == 0`.
# PromQL binds comparisons looser than arithmetic, so what is left of the last one is the vector.
_THRESHOLD = re.compile(
    r"^(?P<vector>.*?)\s*(?:==|!=|>=|<=|>|<)\s*(?P<threshold>-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*$",
    re.S,
)


def binary(name: str) -> str:
    """The path of `promtool` or `prometheus`; fails (never skips) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed. `make test` installs it (Debian package `prometheus`: "
            "apt-get install -y --no-install-recommends prometheus); see `make tools`.",
            pytrace=False,
        )
    return path


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # panels inside collapsed rows


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON under deploy/grafana/dashboards, by file name."""
    return {p.name: json.loads(p.read_text("utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def dashboard_panels() -> Iterator[tuple[str, dict[str, Any]]]:
    """(dashboard file, panel) for every panel, rows included."""
    for name, dashboard in dashboards().items():
        for panel in _panels(dashboard["panels"]):
            yield name, panel


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard query target."""
    found = []
    for name, panel in dashboard_panels():
        for target in panel.get("targets", []):
            found.append((f"{name}: {panel['title']} [{target['refId']}]", target["expr"]))
    return found


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of alerts.yml."""
    groups = yaml.safe_load(ALERTS.read_text("utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alert_expressions() -> list[tuple[str, str]]:
    """(alert name, PromQL) of every alerting rule."""
    return [(rule["alert"], " ".join(rule["expr"].split())) for rule in alert_rules()]


def underlying(expr: str) -> str:
    """An alert expression without its threshold: `A / B > 0.2` → `A / B`.

    An alert that is not firing legitimately returns nothing; its vector must still exist.
    """
    match = _THRESHOLD.match(expr.strip())
    return match["vector"] if match else expr


def job_names() -> list[str]:
    """The scrape jobs of the docker-compose Prometheus, in order."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text("utf-8"))
    return [job["job_name"] for job in config["scrape_configs"]]
