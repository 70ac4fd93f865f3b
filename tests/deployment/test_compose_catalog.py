"""The compose stack and the catalog it runs agree: every setting in the repo works on it.

The compose Airflow mounts `dags/`, so it runs the shipped catalog: its connections must exist
there, its topics must be the ones kafka-init creates and the workers read, its replication
must fit the compose's brokers, and the endpoints in the env must be the services' ports.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

import pytest

from streamforge.contracts.config import KafkaEnv, SinkSettings
from streamforge.orchestration.catalog import read_catalog
from tests.deployment.helpers import CATALOG, DEVCONTAINER_DIR, load_yaml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(DEVCONTAINER_DIR / "compose.yaml")


@pytest.fixture(scope="module")
def settings() -> Any:
    # The compose Airflow sets STREAMFORGE_RUNNER=local; the rest is the shipped catalog.
    return read_catalog(CATALOG, environ={"STREAMFORGE_RUNNER": "local"}).dags[0].settings


def _env(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {k: str(v) for k, v in compose["services"][service]["environment"].items()}


def _brokers(compose: dict[str, Any]) -> list[str]:
    return [
        name
        for name, service in compose["services"].items()
        if "broker" in str(service.get("environment", {}).get("KAFKA_PROCESS_ROLES", ""))
    ]


def _listener_port(kafka_env: dict[str, str], listener: str) -> int:
    for entry in kafka_env["KAFKA_LISTENERS"].split(","):
        name, _, address = entry.partition("://")
        if name == listener:
            return int(address.rsplit(":", 1)[1])
    raise AssertionError(f"no {listener} listener in {kafka_env['KAFKA_LISTENERS']}")


def _internal_port(service: dict[str, Any], default: int) -> int:
    ports = [str(p).rsplit(":", 1)[1] for p in service.get("ports", [])]
    return int(ports[0]) if ports else default


def test_replication_fits_the_compose_brokers(compose: dict[str, Any], settings: Any) -> None:
    brokers = _brokers(compose)
    assert brokers == ["kafka"]
    wanted = settings.topics.data_replication_factor
    assert wanted is None or wanted <= len(brokers), f"data topics want {wanted} replicas, compose has {len(brokers)}"
    init = "\n".join(compose["services"]["kafka-init"]["command"])
    for factor in re.findall(r"--replication-factor (\d+)", init):
        assert int(factor) <= len(brokers)


def test_control_topics_are_created_and_read_under_the_catalog_names(compose: dict[str, Any], settings: Any) -> None:
    init = "\n".join(compose["services"]["kafka-init"]["command"])
    assert set(re.findall(r"--topic (\S+)", init)) == {settings.topics.control, settings.topics.events}
    for service in ("airflow", "dev"):
        env = _env(compose, service)
        assert env["QUEUE_CONTROL_TOPIC"] == settings.topics.control
        assert env["QUEUE_EVENTS_TOPIC"] == settings.topics.events


def test_catalog_connections_exist_and_point_at_the_services(compose: dict[str, Any], settings: Any) -> None:
    env = _env(compose, "airflow")
    services = compose["services"]
    kafka = json.loads(env[f"AIRFLOW_CONN_{settings.connections.kafka.upper()}"])
    host, port = kafka["extra"]["bootstrap.servers"].split(":")
    assert host == services["kafka"]["hostname"]
    assert int(port) == _listener_port(_env(compose, "kafka"), "PLAINTEXT")
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == kafka["extra"]["bootstrap.servers"]

    arango = json.loads(
        re.sub(r"\$\{[^}]*\}", "x", env[f"AIRFLOW_CONN_{settings.connections.arango.upper()}"])
    )  # ${VAR:?...} interpolated by compose
    assert arango["host"] == services["arangodb"]["hostname"]
    assert arango["port"] == _internal_port(services["arangodb"], 8529)
    url = urllib.parse.urlsplit(env["ARANGO_URL"])
    assert (url.hostname, url.port, url.scheme) == (arango["host"], arango["port"], arango["extra"]["protocol"])
    assert env["ARANGO_DB"] == arango["schema"] == services["arango-init"]["environment"]["ARANGO_DB"]

    db = urllib.parse.urlsplit(re.sub(r"\$\{[^}]*\}", "x", env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))
    postgres = services["postgres"]["environment"]
    assert (db.hostname, db.port, db.path.lstrip("/")) == ("postgres", 5432, postgres["POSTGRES_DB"])
    assert db.username == postgres["POSTGRES_USER"]


def test_runner_and_alerts_work_without_kubernetes(compose: dict[str, Any], settings: Any) -> None:
    assert _env(compose, "airflow")["STREAMFORGE_RUNNER"] == "local"
    # Alert targets whose connection is not defined here are skipped with one warning
    # (orchestration/alerts.py), so the catalog's targets cannot fail a compose run.
    assert settings.runner.value == "local"


def test_compose_env_names_are_the_workers_settings(compose: dict[str, Any]) -> None:
    """Every worker-facing name in the compose env is a field of the worker settings models."""
    fields = {name.upper() for model in (KafkaEnv, SinkSettings) for name in model.model_fields}
    for service in ("airflow", "dev"):
        worker_facing = {k for k in _env(compose, service) if k.startswith(("KAFKA_", "ARANGO_", "QUEUE_"))}
        assert worker_facing <= fields, f"{service}: {sorted(worker_facing - fields)} are read by no worker"
