"""`streamforge topics gc` against the session's Airflow and Kafka: it lists a planted leaked data
topic, deletes it only with --yes, and never touches topics younger than the threshold."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from confluent_kafka import Producer
from typer.testing import CliRunner

from streamforge.cli import app
from streamforge.contracts.names import h6
from streamforge.stack import local as sf
from streamforge.stack.kafka import KafkaBroker
from streamforge.stack.local import LocalStack

DAG = "streamforge__btcusdt__api_candles_1m"


def plant(broker: KafkaBroker, h6_: str, age_hours: float) -> str:
    """A data topic of DAG's naming with one record written `age_hours` ago."""
    name = f"wf-btcusdt-api_candles_1m-20200101-{h6_}-data"
    broker.create_topics([name])
    producer = Producer(broker.client_config())
    producer.produce(name, b"{}", timestamp=int((time.time() - age_hours * 3600) * 1000))
    assert producer.flush(30) == 0
    return name


def topics(broker: KafkaBroker) -> set[str]:
    return set(broker.admin().list_topics(timeout=30).topics)


def test_gc_lists_a_leaked_topic_and_deletes_it_only_with_yes(
    airflow_stack: LocalStack, airflow_api: httpx.Client, kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    assert airflow_stack.airflow is not None
    airflow_stack.airflow.wait_for_dag(DAG)
    failed = sf.trigger(airflow_api, DAG, {"start": "2020-01-03", "end": "2020-01-02"})["dag_run_id"]  # plan refuses
    assert sf.wait_for_run(airflow_api, DAG, failed, timeout=300)["state"] == "failed"
    old = plant(kafka_broker, "0a0b0c", age_hours=72)
    young = plant(kafka_broker, "0d0e0f", age_hours=0)
    of_failed_run = plant(kafka_broker, h6(DAG, failed, 1), age_hours=0)

    password = tmp_path / "password"
    password.write_text(airflow_stack.airflow.password)
    kafka = tmp_path / "kafka.json"
    kafka.write_text(json.dumps(kafka_broker.client_config()))
    args = ["topics", "gc", "--airflow-url", airflow_stack.airflow.url, "--airflow-password-file", str(password),
            "--kafka-config", str(kafka)]  # fmt: skip

    listed = CliRunner().invoke(app, args)
    assert listed.exit_code == 0, listed.output
    lines = {line.split("\t")[0]: line for line in listed.output.splitlines() if "\t" in line}
    assert old in lines and "unknown run" in lines[old]
    assert young not in lines and of_failed_run not in lines  # younger than 24 h
    assert "add --yes" in listed.output
    assert {old, young, of_failed_run} <= topics(kafka_broker)

    everything = CliRunner().invoke(app, [*args, "--older-than", "0"])
    lines = {line.split("\t")[0]: line for line in everything.output.splitlines() if "\t" in line}
    assert "run failed" in lines[of_failed_run] and failed in lines[of_failed_run]
    assert "unknown run" in lines[young]
    assert {old, young, of_failed_run} <= topics(kafka_broker)

    deleted = CliRunner().invoke(app, [*args, "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert "deleted" in deleted.output
    deadline = time.monotonic() + 30
    while old in topics(kafka_broker) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = topics(kafka_broker)
    assert old not in left
    assert {young, of_failed_run} <= left
