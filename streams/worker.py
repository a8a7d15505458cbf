"""Running the budget worker: create missing topics, then start Faust's worker."""

from __future__ import annotations

import logging
import os
import sys

from streams.settings import Settings
from streams.topics import TopicNames

LOG_LEVELS = {
    "crit": "CRITICAL",
    "error": "ERROR",
    "warn": "WARNING",
    "info": "INFO",
    "debug": "DEBUG",
}


def run_worker(settings: Settings, loglevel: str = "info") -> int:
    """Create the topics the worker needs, then run it until SIGTERM / Ctrl-C."""
    from faust import Worker
    from prometheus_client import CollectorRegistry

    from streams.app import build_app
    from streams.availability import install_outage_log, wait_for_topics
    from streams.metrics import WorkerMetrics, serve_metrics
    from streams.security import KafkaSecurity

    security = KafkaSecurity.from_settings(settings)  # bad TLS/SASL settings fail here
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # A broker not up yet is waited for (one log line per state change); a broker refusing the
    # TLS/SASL settings fails here, clearly. SIGTERM or Ctrl-C meanwhile: nothing to clean up.
    if not wait_for_topics(
        settings.bootstrap,
        TopicNames(settings.topic_prefix).all(),
        settings.partitions,
        options=security.aiokafka_kwargs(),
    ):
        return 0
    install_outage_log(settings.bootstrap)  # a broker outage: two log lines, not thousands
    metrics = WorkerMetrics(CollectorRegistry())
    port = serve_metrics(metrics.registry, settings.metrics_host, settings.metrics_port, "worker")
    app = build_app(settings, metrics=metrics)

    @app.task
    async def announce_metrics() -> None:
        """Say where /metrics is, once Faust's logging is set up."""
        where = f"http://{settings.metrics_host}:{port}/metrics" if port else "off (port 0)"
        logging.getLogger("tokenbudget.worker").info("worker metrics: %s", where)

    level = LOG_LEVELS[loglevel]
    logging.getLogger("tokenbudget").setLevel(level)
    worker = Worker(app, loglevel=loglevel, quiet=True)
    # aiokafka logs every send at debug level; building those records costs ~5% of a worker.
    # INFO keeps its group-membership lines (which partitions this worker holds).
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLevelName(level)))
    # Faust logs every record it sends, value included, at debug level: message content, system
    # prompts and tasks. Kept out of the logs unless content logging is asked for.
    content = ("faust.topics", "faust.transport.drivers.aiokafka")
    if settings.log_content:
        logging.getLogger("tokenbudget.worker").warning(
            "TOKENBUDGET_LOG_CONTENT is on: message content may appear in this log at debug level"
        )
    else:
        for name in content:
            logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level)))
    worker.execute_from_commandline()
    return 0


def command_line(
    bootstrap: str,
    *,
    topic_prefix: str,
    app_id: str,
    data_dir: str,
    web_port: int,
    partitions: int = 4,
    scoring: bool = True,
    store: str = "memory://",
    embedded_broker: bool = True,
    loglevel: str = "info",
    metrics_port: int | None = 0,
) -> list[str]:
    """The argv that runs a worker as its own process (demo, benchmarks, tests).

    `metrics_port` is off (0) by default here, since such launchers start several processes on
    one machine; None leaves it to `TOKENBUDGET_METRICS_PORT` (default 9464).
    """
    argv = [
        sys.executable,
        "-m",
        "streams",
        "worker",
        "--bootstrap",
        bootstrap,
        "--partitions",
        str(partitions),
        "--topic-prefix",
        topic_prefix,
        "--app-id",
        app_id,
        "--data-dir",
        data_dir,
        "--web-port",
        str(web_port),
        "--store",
        store,
        "--loglevel",
        loglevel,
    ]
    if metrics_port is not None:
        argv += ["--metrics-port", str(metrics_port)]
    if embedded_broker:
        argv.append("--embedded-broker")
    if not scoring:
        argv.append("--no-scoring")
    return argv
