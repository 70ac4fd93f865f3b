"""The one Kafka error policy (contracts/kafka_errors.py) on confluent-kafka's real error objects."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from streamforge.contracts.kafka_errors import FATAL, is_fatal, is_partition_eof


@pytest.mark.parametrize("name", sorted(FATAL))
def test_listed_errors_are_fatal(name: str) -> None:
    assert is_fatal(KafkaError(getattr(KafkaError, name)))


@pytest.mark.parametrize(
    "name", ["_TRANSPORT", "_TIMED_OUT", "NOT_COORDINATOR", "_ALL_BROKERS_DOWN", "REQUEST_TIMED_OUT"]
)
def test_transient_errors_are_retried(name: str) -> None:
    assert not is_fatal(KafkaError(getattr(KafkaError, name)))


def test_librdkafka_fatal_flag_wins() -> None:
    assert is_fatal(KafkaError(KafkaError._TRANSPORT, fatal=True))


def test_end_of_partition_is_no_error() -> None:
    assert is_partition_eof(KafkaError(KafkaError._PARTITION_EOF))
    assert not is_partition_eof(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
