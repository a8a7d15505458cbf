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

    from streams.app import build_app
    from streams.broker import create_topics

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    create_topics(settings.bootstrap, TopicNames(settings.topic_prefix).all(), settings.partitions)
    app = build_app(settings)
    level = LOG_LEVELS[loglevel]
    logging.getLogger("tokenbudget").setLevel(level)
    worker = Worker(app, loglevel=loglevel, quiet=True)
    # aiokafka logs every send at debug level; building those records costs ~5% of a worker.
    # INFO keeps its group-membership lines (which partitions this worker holds).
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLevelName(level)))
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
) -> list[str]:
    """The argv that runs a worker as its own process (demo, benchmarks, tests)."""
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
    if embedded_broker:
        argv.append("--embedded-broker")
    if not scoring:
        argv.append("--no-scoring")
    return argv
