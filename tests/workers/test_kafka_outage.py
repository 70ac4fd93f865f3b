"""A broker outage does not flood a worker's log: librdkafka's repeated connection errors are
logged once, then summarised with a count (streamforge.contracts.kafka_logging).

Runs against a private broker (the session's stays up for everyone else), stopped for 45 s
while a sink waits for data with its three clients: data consumer, control consumer and
telemetry producer. Unlimited, each of them logs a failed connect about every 50 ms.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamforge.stack.kafka import CONTROL_TOPICS, KafkaBroker
from tests.workers.test_sink import Sink, sink_env

OUTAGE_SECONDS = 45
MAX_LINES = 36  # "a few dozen" for the whole outage, all clients of the worker together

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def private_broker() -> Iterator[KafkaBroker]:
    broker = KafkaBroker()
    broker.start()
    try:
        broker.create_topics(CONTROL_TOPICS)
        yield broker
    finally:
        broker.stop()


def _connection_errors(log: Path) -> list[str]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = {"msg": line}  # anything librdkafka wrote to stderr by itself counts too
        text = str(record.get("msg", ""))
        if "Connection refused" in text or "Connect to" in text:
            lines.append(text)
    return lines


def _wait_for(log: Path, needle: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    pytest.fail(f"{needle!r} not in the worker log after {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


def test_a_45_s_outage_logs_a_few_dozen_connection_errors(
    private_broker: KafkaBroker, arango_endpoint: Any, arango_db: Any, tmp_path: Path
) -> None:
    topic = "outage-data"
    private_broker.create_topics([topic])
    env = sink_env(private_broker, arango_endpoint, arango_db.name, topic, "btcusdt_api_candles_1m_2020_01_01")
    sink = Sink(env, tmp_path / "sink.log", private_broker).start()
    try:
        _wait_for(sink.log_path, "control listener ready")
        _wait_for(sink.log_path, '"msg": "starting"')
        private_broker.stop()
        time.sleep(OUTAGE_SECONDS)
        errors = _connection_errors(sink.log_path)
    finally:
        assert sink.proc is not None
        sink.proc.send_signal(signal.SIGTERM)
        sink.proc.wait(30)
    print(f"{len(errors)} connection-error lines in a {OUTAGE_SECONDS} s outage; first: {errors[:1]}")
    assert errors, "the outage must still be reported"
    assert len(errors) <= MAX_LINES, "\n".join(errors[:50])
    # the repeats are counted, not lost
    assert any("repeated" in line for line in errors), "\n".join(errors)
