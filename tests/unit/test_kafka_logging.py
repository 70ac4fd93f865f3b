"""The Kafka client log policy: first line of a kind at once, then a summary with the count."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import Consumer

from streamforge.contracts.kafka_logging import RepeatFilter, kafka_client_logger, summary_seconds

REFUSED = "%s [%s] %s", "FAIL", "rdkafka#consumer-{n}", "Connect to ipv4#127.0.0.1:{port} failed: Connection refused"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _logger(name: str, clock: Clock, every: float = 30) -> tuple[logging.Logger, list[str]]:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger.handlers[:] = [Keep()]
    logger.filters[:] = [RepeatFilter(every, clock)]
    return logger, seen


def _refused(logger: logging.Logger, n: int = 1, port: int = 9092) -> None:
    fmt, fac, name, text = REFUSED
    logger.log(logging.ERROR, fmt, fac, name.format(n=n), text.format(port=port))


def test_repeats_are_counted_and_summarised_once_per_interval() -> None:
    clock = Clock()
    logger, seen = _logger("test.kafka.repeats", clock)
    for step in range(900):  # 45 s of a failed connect every 50 ms, from two clients
        clock.now = step * 0.05
        _refused(logger, n=1 + step % 2)
    assert len(seen) == 2
    assert seen[0].endswith("Connection refused") and "repeated" not in seen[0]
    assert "(repeated 599 times in the last 30 s)" in seen[1]


def test_other_kinds_of_lines_are_not_held_back() -> None:
    clock = Clock()
    logger, seen = _logger("test.kafka.kinds", clock)
    _refused(logger)
    logger.warning("%s [%s] %s", "REQTMOUT", "rdkafka#producer-1", "Timed out 1 in-flight request")
    _refused(logger)
    assert len(seen) == 2 and "REQTMOUT" in seen[1]


def test_confluent_kafka_clients_log_through_it() -> None:
    logger = kafka_client_logger("test.kafka.client")
    assert sum(isinstance(f, RepeatFilter) for f in kafka_client_logger("test.kafka.client").filters) == 1
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger.handlers[:] = [Keep()]
    logger.propagate = False
    consumer = Consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "g", "logger": logger})
    try:
        for _ in range(20):  # 4 s: librdkafka retries the connect ~80 times meanwhile
            consumer.poll(0.2)
    finally:
        consumer.close()
    refused = [line for line in seen if "Connection refused" in line]
    assert len(refused) == 1, seen


@pytest.mark.parametrize(("raw", "expected"), [("", 30.0), ("5", 5.0), ("0.5", 0.5)])
def test_summary_interval_from_env(monkeypatch: pytest.MonkeyPatch, raw: str, expected: float) -> None:
    monkeypatch.setenv("KAFKA_LOG_SUMMARY_SECONDS", raw)
    assert summary_seconds() == expected


@pytest.mark.parametrize("raw", ["soon", "0", "-1"])
def test_a_bad_summary_interval_is_an_error(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("KAFKA_LOG_SUMMARY_SECONDS", raw)
    with pytest.raises(ValueError, match="KAFKA_LOG_SUMMARY_SECONDS"):
        summary_seconds()
