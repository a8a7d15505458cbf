"""A real Prometheus (the Debian binary) scrapes a real budget worker and summarizer while a
small fleet runs on the embedded broker; then every PromQL expression of the Grafana dashboards
and of the alert rules, read from deploy/, must return data.

Alert expressions are comparisons (`… > 0.2`, `up == 0`) that are rightly empty while nothing is
wrong, so for those the vector left of the threshold is evaluated (`deploy_files.underlying`):
the series and the arithmetic must exist; whether the threshold is crossed is what promtool's
unit tests (tests/unit/test_deploy.py) check. Every expression must also yield a number, not
only NaN: a quantile over a histogram nobody observed would be NaN.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from streams.broker import free_port
from streams.codecs import TurnEvent, TurnEventType, Usage
from streams.summarizer.service import command_line as summarizer_command_line
from streams.topics import TopicNames
from streams.worker import command_line
from tests.deploy_files import (
    ALERTS,
    PROMETHEUS_CONFIG,
    alert_expressions,
    alert_rules,
    binary,
    dashboard_expressions,
    underlying,
)
from tests.integration.fleet import FleetClient, fleet_events, run

PARTITIONS = 4
GARBAGE = [(b"agent-x", b"not avro"), (b"agent-y", b"\xc3\x01\x00\x00truncated")]


class Prometheus:
    """A Prometheus server process on a loopback port with its own TSDB directory."""

    def __init__(self, workdir: Path, targets: dict[str, int]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        config = yaml.safe_load(PROMETHEUS_CONFIG.read_text("utf-8"))
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(ALERTS)]
        config["scrape_configs"] = [  # the compose jobs, with this test's processes as targets
            {**job, "static_configs": [{"targets": [f"127.0.0.1:{targets[job['job_name']]}"]}]}
            for job in config["scrape_configs"]
            if job["job_name"] in targets
        ]
        assert {job["job_name"] for job in config["scrape_configs"]} == set(targets)
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary("prometheus"),
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str, **params: str) -> Any:
        """GET an API path; the `data` of a successful answer."""
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log_path.read_text()[-4000:]}")
        answer = httpx.get(f"{self.url}{path}", params=params, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector (scalars come back as one sample)."""
        data = self.get("/api/v1/query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def value(self, expr: str) -> float:
        """The one value of an aggregating query; 0 while it has none."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0

    def ready(self) -> bool:
        """True once the HTTP API answers."""
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log_path.read_text()}") from None
            return False

    def stop(self) -> None:
        """Terminate, then kill after 10 s; always reaps."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def missing(prometheus: Prometheus, exprs: list[tuple[str, str]]) -> list[str]:
    """The expressions that return no sample, or only NaN, right now."""
    empty = []
    for where, expr in exprs:
        values = [float(sample["value"][1]) for sample in prometheus.query(expr)]
        if not any(math.isfinite(v) for v in values):
            empty.append(f"{where}: {expr} -> {values or 'no data'}")
    return empty


def test_every_dashboard_and_alert_expression_returns_data(
    broker, faust_worker, unique_name, wait_for, tmp_path, request
) -> None:
    prefix = unique_name("prom") + "."
    topics = TopicNames(prefix)
    ports = {"tokenbudget-worker": free_port(), "tokenbudget-summarizer": free_port()}
    env = {"TOKENBUDGET_METRICS_HOST": "127.0.0.1"}

    def summarizer_command(_worker: object) -> list[str]:
        return summarizer_command_line(
            broker.bootstrap,
            topic_prefix=prefix,
            group=prefix + "summarizer",
            partitions=PARTITIONS,
            metrics_port=ports["tokenbudget-summarizer"],
        )

    def worker_command(worker: Any) -> list[str]:
        return command_line(
            broker.bootstrap,
            topic_prefix=prefix,
            app_id=prefix + "worker",
            data_dir=str(worker.datadir),
            web_port=worker.web_port,
            partitions=PARTITIONS,
            scoring=True,  # so the embedding latency has observations
            metrics_port=ports["tokenbudget-worker"],
        )

    prometheus = Prometheus(tmp_path, ports)  # first: it starts while the workers do
    request.addfinalizer(prometheus.stop)
    summarizer = faust_worker(
        "streams", name="summarizer", command=summarizer_command, env=env, ready=False
    )
    worker = faust_worker(
        "streams", name="budget", command=worker_command, env=env, ready_timeout=90
    )
    summarizer.wait_for_log("summarizer ready", timeout=90)
    where = f"http://127.0.0.1:{ports['tokenbudget-worker']}/metrics"
    worker.wait_for_log(f"worker metrics: {where}", timeout=10)
    wait_for(prometheus.ready, 30, interval=0.2, what="prometheus to answer")

    def scraped() -> bool:
        up = prometheus.query('up{job=~"tokenbudget-.*"}')
        metrics = prometheus.value("count(tokenbudget_sessions)")  # a series every worker has
        return len(up) == 2 and all(s["value"][1] == "1" for s in up) and metrics == 4

    wait_for(scraped, 30, interval=0.2, what="both targets scraped (up == 1)")

    fleet = fleet_events(4, 20, seed=11)
    first = next(iter(fleet))  # one session on a model without an exact tokenizer
    start = fleet[first][0]
    fleet[first][0] = dataclasses.replace(
        start, session_start=dataclasses.replace(start.session_start, model="claude-sonnet-4-5")
    )
    turns = sum(len(events) - 1 for events in fleet.values())
    for sid, events in fleet.items():  # each agent reports the bill of one LLM call
        last = events[-1].seq
        usage = Usage(prompt_tokens=900, context_seq=last, context_tokens=880)
        events.append(
            TurnEvent(f"{sid}/usage", sid, last + 1, TurnEventType.USAGE, 0.0, usage=usage)
        )

    async def publish() -> None:
        async with FleetClient(broker.bootstrap, topics) as client:
            await client.publish([e for events in fleet.values() for e in events])
            await client.publish(GARBAGE)

    run(publish())

    def processed() -> bool:
        return (
            prometheus.value("sum(tokenbudget_turns_processed_total)") == turns
            and prometheus.value("sum(tokenbudget_count_error_ratio_count)") == len(fleet)
            and prometheus.value('sum(tokenbudget_dead_letters_total{job="tokenbudget-worker"})')
            == len(GARBAGE)
            and prometheus.value('sum(tokenbudget_summarizer_summaries_total{status="ok"})') > 0
            and prometheus.value('sum(tokenbudget_summaries_total{outcome=~"applied|ignored"})') > 0
        )

    def progress() -> str:
        names = ("tokenbudget_turns_processed_total", "tokenbudget_summaries_total")
        return "the fleet to be processed and scraped; so far " + ", ".join(
            f"{n}={prometheus.query(f'sum by (outcome) ({n})')}" for n in names
        )

    wait_for(processed, 60, interval=0.5, what=progress)

    dashboard = dashboard_expressions()
    alerts = [(name, underlying(expr)) for name, expr in alert_expressions()]
    everything = dashboard + alerts
    assert len(dashboard) >= 20 and len(alerts) == len(alert_rules())
    empty: list[str] = []

    def all_answer() -> bool:
        empty[:] = missing(prometheus, everything)
        return not empty

    def still_empty() -> str:
        return "every expression to return data; still empty:\n" + "\n".join(empty)

    wait_for(all_answer, 30, interval=0.5, what=still_empty)

    # Prometheus itself evaluates the rule file against the same data without errors.
    groups = prometheus.get("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(alert_rules())
    assert all(rule["health"] in ("ok", "unknown") for rule in rules), rules
