"""The real Kafka broker harness: version, both listeners, authentication, TLS trust, time lookup."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from streamforge.stack.kafka import CONTROL_TOPICS, KAFKA_VERSION, POM_PATH, KafkaBroker, write_ca
from tests.fixtures.kafka import TopicFactory

pytestmark = pytest.mark.kafka


def _produce(config: dict[str, Any], topic: str, values: list[bytes], timestamps: list[int] | None = None) -> None:
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer(config)
    for i, value in enumerate(values):
        kwargs = {"timestamp": timestamps[i]} if timestamps else {}
        producer.produce(topic, value=value, key=str(i).encode(), on_delivery=delivered, **kwargs)
    assert producer.flush(15) == 0, "messages still in flight after 15s"
    assert not errors, errors


def _consume(consumer: Consumer, count: int, timeout: float = 20.0) -> list[Any]:
    received: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(received) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        received.append(msg)
    return received


def _consumer(config: dict[str, Any]) -> Consumer:
    return Consumer(
        config
        | {
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def _collect_errors(
    config: dict[str, Any], done: Callable[[list[KafkaError]], bool], timeout: float
) -> list[KafkaError]:
    """Run a producer against `config` until `done(errors seen by error_cb)` or the timeout."""
    errors: list[KafkaError] = []
    producer = Producer(config | {"error_cb": errors.append, "reconnect.backoff.max.ms": 1000})
    deadline = time.monotonic() + timeout
    while not done(errors) and time.monotonic() < deadline:
        producer.poll(0.2)
    return errors


def test_broker_runs_the_pinned_kafka_version(kafka_broker: KafkaBroker) -> None:
    # Three independent sources must agree: the pom pin, the version compiled into the
    # kafka-clients jar on the broker classpath, and what the running broker logged.
    pom_pin = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM_PATH.read_text())
    assert pom_pin and pom_pin.group(1) == KAFKA_VERSION
    assert kafka_broker.version == KAFKA_VERSION
    assert kafka_broker.logged_version() == kafka_broker.version


def test_control_topics_exist(kafka_broker: KafkaBroker) -> None:
    topics = kafka_broker.admin().list_topics(timeout=10).topics
    for name in CONTROL_TOPICS:
        assert name in topics and topics[name].partitions, f"{name} missing"


def test_client_config_overrides_are_librdkafka_properties(kafka_broker: KafkaBroker) -> None:
    config = kafka_broker.client_config(group_id="g", enable_auto_commit=False, log_level=4, error_cb=print)
    assert config["group.id"] == "g" and config["enable.auto.commit"] is False
    assert config["log_level"] == 4 and config["error_cb"] is print
    Consumer(config).close()  # librdkafka rejects unknown properties at construction


def test_produce_consume_plaintext_with_consumer_group(kafka_broker: KafkaBroker, kafka_topic: TopicFactory) -> None:
    topic = kafka_topic(partitions=3)
    values = [f"plain-{i}".encode() for i in range(10)]
    _produce(kafka_broker.client_config(), topic, values)

    consumer = _consumer(kafka_broker.client_config())
    try:
        consumer.subscribe([topic])  # goes through the group coordinator (__consumer_offsets)
        received = _consume(consumer, len(values))
    finally:
        consumer.close()
    assert sorted(m.value() for m in received) == sorted(values)
    assert {m.partition() for m in received} <= {0, 1, 2}


def test_produce_consume_sasl_ssl_scram_with_ca_verification(
    kafka_broker: KafkaBroker, kafka_topic: TopicFactory
) -> None:
    env = kafka_broker.env("SASL_SSL")
    assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert Path(env["KAFKA_CA_PATH"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    # Build the client from the worker env, as a worker would.
    config = {
        "bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
        "security.protocol": env["KAFKA_SECURITY_PROTOCOL"],
        "sasl.mechanism": env["KAFKA_SASL_MECHANISM"],
        "sasl.username": env["KAFKA_USER"],
        "sasl.password": env["KAFKA_PASSWORD"],
        "ssl.ca.location": env["KAFKA_CA_PATH"],
        "ssl.endpoint.identification.algorithm": "https",
    }
    assert config == kafka_broker.client_config("SASL_SSL")
    topic = kafka_topic()
    values = [f"secure-{i}".encode() for i in range(5)]
    _produce(config, topic, values)

    consumer = _consumer(config)
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        received = _consume(consumer, len(values))
    finally:
        consumer.close()
    assert [m.value() for m in received] == values


def test_wrong_password_is_rejected(kafka_broker: KafkaBroker) -> None:
    config = kafka_broker.client_config("SASL_SSL", sasl_password="not-" + kafka_broker.scram_password)
    errors = _collect_errors(config, lambda errs: any(e.code() == KafkaError._AUTHENTICATION for e in errs), timeout=15)
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert auth, f"no authentication error, got {errors}"
    assert "SCRAM-SHA-512" in auth[0].str() or "invalid credentials" in auth[0].str()


@pytest.mark.parametrize("trust", ["other-ca", "system-store"])
def test_client_not_trusting_the_ca_fails_the_handshake(kafka_broker: KafkaBroker, tmp_path: Path, trust: str) -> None:
    config = kafka_broker.client_config("SASL_SSL")
    if trust == "other-ca":
        config["ssl.ca.location"] = str(write_ca(tmp_path, "unrelated CA").cert_path)
    else:
        del config["ssl.ca.location"]  # OpenSSL's default trust store: no test CA in it
    errors = _collect_errors(config, lambda errs: any(e.code() == KafkaError._SSL for e in errs), timeout=15)
    ssl = [e for e in errors if e.code() == KafkaError._SSL]
    assert ssl, f"no SSL handshake error, got {errors}"
    assert "certificate verify failed" in ssl[0].str(), ssl[0].str()
    assert not any(e.code() == KafkaError._AUTHENTICATION for e in errors), "got past TLS to SASL"


def test_offsets_for_times_finds_first_message_at_or_after_a_timestamp(
    kafka_broker: KafkaBroker, kafka_topic: TopicFactory
) -> None:
    topic = kafka_topic()
    # In the past: Kafka 4 rejects CreateTime more than an hour ahead of the broker clock.
    base = int(time.time() * 1000) - 600_000
    timestamps = [base + i * 1000 for i in range(5)]
    _produce(kafka_broker.client_config(), topic, [f"at-{t}".encode() for t in timestamps], timestamps)

    consumer = _consumer(kafka_broker.client_config())
    try:
        # One lookup per call: a ListOffsets request cannot carry the same partition twice.
        lookups = {base - 5000: 0, base: 0, base + 2000: 2, base + 2500: 3, base + 4000: 4, base + 4001: -1}
        for ts, expected in lookups.items():
            (found,) = consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert found.error is None, found.error
            assert found.offset == expected, f"timestamp base{ts - base:+d} ms"  # -1: past the end

        # Start reading at the offset of a "creation time", as the workers do on queue-control.
        start = consumer.offsets_for_times([TopicPartition(topic, 0, base + 2500)], timeout=10)
        consumer.assign(start)
        received = _consume(consumer, 2)
    finally:
        consumer.close()
    assert [m.timestamp()[1] for m in received] == timestamps[3:]
    assert [m.offset() for m in received] == [3, 4]


def test_stop_kills_the_process_group_and_removes_the_run_dir() -> None:
    # A broker of its own: the session broker must outlive this test.
    broker = KafkaBroker()
    with broker:
        pid, run_dir = broker.pid, broker.run_dir
        assert pid is not None and broker.is_running() and run_dir.is_dir()
    assert not broker.is_running()
    assert not run_dir.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # no process of the group is left
