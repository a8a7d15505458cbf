"""docker-compose.yml cannot run here (no Docker engine), so its structure is checked: the
services, pinned images, published ports, settings names and values the embedded stack uses,
the topics, and every file it mounts or builds from."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import Settings
from streams.topics import TopicNames
from tests.deploy_files import REPO_ROOT

COMPOSE_PATH = REPO_ROOT / "docker-compose.yml"
COMPOSE_TEXT = COMPOSE_PATH.read_text("utf-8")
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
SETTINGS_NAMES = {f"TOKENBUDGET_{name.upper()}" for name in Settings.model_fields}
INTERPOLATION = re.compile(r"^\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}$")


def environment(service: str) -> dict[str, str]:
    """A service's environment with `${VAR:-default}` resolved to the default."""
    env = SERVICES[service].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    resolved = {}
    for key, value in env.items():
        match = INTERPOLATION.match(str(value))
        resolved[key] = (match["default"] or "") if match else str(value)
    return resolved


def published(service: str) -> set[int]:
    """Host ports a service publishes."""
    return {int(str(port).split(":")[0]) for port in SERVICES[service].get("ports", [])}


def test_the_stack_has_every_service() -> None:
    assert set(SERVICES) == {
        "kafka",
        "kafka-init",
        "worker",
        "summarizer",
        "prometheus",
        "grafana",
    }
    assert SERVICES["kafka-init"]["restart"] == "no"  # one-shot
    for service in ("worker", "summarizer"):
        depends = SERVICES[service]["depends_on"]["kafka-init"]
        assert depends["condition"] == "service_completed_successfully", service
    assert SERVICES["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "healthcheck" in SERVICES["kafka"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_image_is_pinned(service: str) -> None:
    image = SERVICES[service]["image"]
    name, _, tag = image.rpartition(":")
    assert name and re.fullmatch(r"v?\d+(\.\d+)+[\w.-]*", tag), f"{service}: {image} not pinned"
    assert "latest" not in image


def test_kafka_is_a_single_kraft_node() -> None:
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:3.9.")
    env = environment("kafka")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert published("kafka") == {29092}


def test_kafka_init_creates_every_topic_with_the_configured_partitions() -> None:
    script = " ".join(SERVICES["kafka-init"]["command"])
    for topic in TopicNames().all():
        assert re.search(rf"(^|\s){re.escape(topic)}(\s|;)", script), f"topic {topic} missing"
    assert "--if-not-exists" in script and "$${TOKENBUDGET_PARTITIONS}" in script
    assert environment("kafka-init")["TOKENBUDGET_PARTITIONS"] == "8"


def test_every_tokenbudget_variable_is_a_setting() -> None:
    used = set(re.findall(r"\bTOKENBUDGET_[A-Z0-9_]+", COMPOSE_TEXT))
    assert used, "no TOKENBUDGET_* variable"
    assert used <= SETTINGS_NAMES, f"not settings: {sorted(used - SETTINGS_NAMES)}"


@pytest.mark.parametrize("service", ["worker", "summarizer"])
def test_the_processes_settings_are_valid(service: str, monkeypatch) -> None:
    """The values pass the same validation as when the process reads its environment."""
    env = environment(service)
    for key in list(os.environ):
        if key.startswith("TOKENBUDGET_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("TOKENBUDGET_"):
            monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.bootstrap == "kafka:9092" and settings.partitions == 8
    assert settings.metrics_host == "0.0.0.0"  # scraped from the prometheus container
    if service == "worker":
        assert settings.store.startswith("rocksdb://") and str(settings.data_dir) == "/data"
        assert published("worker") == {settings.metrics_port}
    else:
        assert settings.summarizer_backend == "extractive"
        assert published("summarizer") == {settings.summarizer_metrics_port}


def test_prometheus_scrapes_the_ports_the_processes_serve() -> None:
    config = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text("utf-8"))
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }
    worker_port = environment("worker")["TOKENBUDGET_METRICS_PORT"]
    summarizer_port = environment("summarizer")["TOKENBUDGET_SUMMARIZER_METRICS_PORT"]
    assert targets["tokenbudget-worker"] == [f"worker:{worker_port}"]
    assert targets["tokenbudget-summarizer"] == [f"summarizer:{summarizer_port}"]
    assert published("prometheus") == {9090} and published("grafana") == {3000}


def test_every_mounted_file_and_the_build_exist() -> None:
    mounts = 0
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO_ROOT / source).exists(), f"{name} mounts missing {source}"
                mounts += 1
            else:
                assert source in COMPOSE["volumes"], f"{name}: undeclared volume {source}"
    assert mounts >= 4
    for name in ("worker", "summarizer"):
        assert SERVICES[name]["build"] == "."
        assert SERVICES[name]["image"] == SERVICES["worker"]["image"]  # one image, two commands
    # The config Prometheus loads names its rules relative to itself: mounted side by side.
    prometheus_mounts = dict(v.split(":")[:2] for v in SERVICES["prometheus"]["volumes"])
    assert prometheus_mounts["./deploy/prometheus/alerts.yml"] == "/etc/prometheus/alerts.yml"


def test_the_dockerfile_installs_torch_first_and_pinned() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text("utf-8")
    base = re.search(r"^FROM (\S+)", dockerfile, re.M)
    assert base and re.search(r":\d+\.\d+", base[1]), "base image not pinned"
    torch = dockerfile.index("torch==2.13.0")
    assert torch < dockerfile.index("requirements.lock")
    assert "download.pytorch.org/whl/cpu" in dockerfile
    for path in re.findall(r"^COPY (\S+)", dockerfile, re.M):
        assert (REPO_ROOT / path).exists(), f"Dockerfile copies missing {path}"
    assert Path(REPO_ROOT / ".dockerignore").exists()
