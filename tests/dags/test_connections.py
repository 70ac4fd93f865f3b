"""The two connections map to the worker env in one place, with the workers' own rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.sdk import Connection

from streamforge.contracts.config import SinkSettings
from streamforge.orchestration.connections import ConnectionSettingsError, worker_env


def kafka(**extra: object) -> Connection:
    return Connection(conn_id="streamforge_kafka", conn_type="kafka", extra=json.dumps(extra))


ARANGO = Connection(
    conn_id="streamforge_arango",
    conn_type="generic",
    host="arangodb.arangodb",
    port=8529,
    login="streamforge",
    password="arango-pw",
    schema="market",
    extra=json.dumps({"protocol": "https"}),
)


def test_sasl_ssl_connection(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env = worker_env(
        kafka(
            **{
                "bootstrap.servers": "kafka:9093",
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "sf",
                "sasl.password": "kafka-pw",
                "ssl.ca.location": str(ca),
                "group.id": "ignored",
            }
        ),
        ARANGO,
    )
    assert env == {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_USER": "sf",
        "KAFKA_PASSWORD": "kafka-pw",
        "KAFKA_CA_PATH": str(ca),
        "ARANGO_URL": "https://arangodb.arangodb:8529",
        "ARANGO_DB": "market",
        "ARANGO_USER": "streamforge",
        "ARANGO_PASSWORD": "arango-pw",
    }
    run = {
        "QUEUE_ID": "q",
        "SYMBOL": "BTCUSDT",
        "TYPE": "api_trades",
        "TELEMETRY_PRODUCER_ID": "p",
        "QUEUE_CREATED_AT": "2024-08-01T00:00:00Z",
        "KAFKA_TOPIC": "q-data",
        "COLLECTION_NAME": "c",
    }
    settings = SinkSettings.model_validate({k.lower(): v for k, v in (env | run).items()})
    assert settings.arango_password.get_secret_value() == "arango-pw"


def test_plaintext_and_loader_without_arango() -> None:
    env = worker_env(kafka(**{"bootstrap.servers": "127.0.0.1:9092"}), None)
    assert env == {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "bootstrap.servers: Field required"),
        (
            {"bootstrap.servers": "k:9093", "security.protocol": "SASL_SSL"},
            "KAFKA_USER and KAFKA_PASSWORD are required with KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        ),
        (
            {"bootstrap.servers": "k:9093", "security.protocol": "SSL", "ssl.ca.location": "/no/such/ca.crt"},
            "KAFKA_CA_PATH '/no/such/ca.crt' is not a readable file",
        ),
        ({"bootstrap.servers": "k:9093", "security.protocol": "TLS"}, "security.protocol: Input should be"),
    ],
)
def test_bad_kafka_connection_names_the_problem(extra: dict[str, str], message: str) -> None:
    with pytest.raises(ConnectionSettingsError, match="connection 'streamforge_kafka'") as info:
        worker_env(kafka(**extra), None)
    assert message in str(info.value)


def test_arango_url_forms() -> None:
    plain = Connection(conn_id="a", conn_type="generic", host="127.0.0.1", port=8530)
    assert worker_env(kafka(**{"bootstrap.servers": "k:1"}), plain)["ARANGO_URL"] == "http://127.0.0.1:8530"
    full = Connection(conn_id="a", conn_type="http", host="https://db.example.com:8529/")
    assert worker_env(kafka(**{"bootstrap.servers": "k:1"}), full)["ARANGO_URL"] == "https://db.example.com:8529"
    assert worker_env(kafka(**{"bootstrap.servers": "k:1"}), plain)["ARANGO_DB"] == "streamforge"
