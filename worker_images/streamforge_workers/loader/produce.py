"""Records → the run's data topic with an idempotent producer; then the end-of-stream marker.

Delivery failures are never ignored: the delivery callback records the first error and the
next `send` / `finish` raises it. The EOS marker goes to EVERY partition of the topic, after
all records, and `finish` returns only when everything is acknowledged (acks=all).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streamforge.contracts.kafka_logging import kafka_client_logger
from streamforge.contracts.records import EndOfStream
from streamforge_workers.runtime.worker import FatalError

log = logging.getLogger("streamforge.loader.produce")

# Measured with the 105,280-trade day (24 MB of JSON), best of 3, on the local broker:
# lz4 0.34 s CPU / 4.4 MB on disk, zstd 0.45 s / 2.2 MB, none 0.37 s / 24 MB; linger 5/25/50 ms
# made no CPU difference. lz4 is the fastest; the topic lives only for one run.
PRODUCER_TUNING: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 25,
    "batch.size": 512 * 1024,
    "compression.type": "lz4",
    # Whole-run buffer: a slow broker blocks produce() (BufferError → poll) instead of growing memory.
    "queue.buffering.max.messages": 100_000,
    "queue.buffering.max.kbytes": 64 * 1024,
    "message.timeout.ms": 120_000,
    # The DAG creates the topic with its partition count; never let a metadata request create it.
    "allow.auto.create.topics": False,
}
POLL_EVERY = 1000
METADATA_TIMEOUT = 10.0
FLUSH_TIMEOUT = 60.0


class Keyed(Protocol):
    @property
    def key(self) -> str: ...

    def to_bytes(self) -> bytes: ...


class DataProducer:
    def __init__(self, kafka_config: dict[str, Any], topic: str, client_id: str, **overrides: Any) -> None:
        self.topic = topic
        config = {**kafka_config, **PRODUCER_TUNING, "client.id": client_id, "logger": kafka_client_logger()}
        self._producer = Producer(config | overrides)
        self._error: str | None = None
        self.sent = 0
        self.delivered = 0

    # -- metadata ----------------------------------------------------------------------------
    def partitions(self, timeout: float = METADATA_TIMEOUT) -> list[int]:
        """Partitions of the data topic; a clear error when it does not exist."""
        try:
            metadata = self._producer.list_topics(self.topic, timeout=timeout)
        except KafkaException as exc:
            raise FatalError(f"cannot read metadata of Kafka topic {self.topic!r}: {exc}") from exc
        info = metadata.topics.get(self.topic)
        if info is None or info.error is not None or not info.partitions:
            reason = info.error.str() if info is not None and info.error is not None else "no partitions"
            raise FatalError(f"Kafka topic {self.topic!r} is not available ({reason}); the DAG creates it")
        return sorted(info.partitions)

    # -- producing ---------------------------------------------------------------------------
    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.delivered += 1
        elif self._error is None:
            self._error = f"{err.str()} (code {err.name()}, partition {msg.partition()})"

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise FatalError(f"Kafka delivery to {self.topic!r} failed: {self._error}")

    def _produce(self, **kwargs: Any) -> None:
        while True:
            try:
                self._producer.produce(self.topic, on_delivery=self._on_delivery, **kwargs)
                return
            except BufferError:  # local queue full: let librdkafka drain it
                self._producer.poll(0.05)
                self._raise_if_failed()

    def send(self, record: Keyed) -> None:
        self._produce(key=record.key.encode(), value=record.to_bytes())
        self.sent += 1
        if self.sent % POLL_EVERY == 0:
            self._producer.poll(0)
            self._raise_if_failed()

    def finish(self, count: int, partitions: list[int], timeout: float = FLUSH_TIMEOUT) -> None:
        """EOS marker (records=count) on every partition, then wait for every acknowledgement."""
        self._raise_if_failed()
        marker = EndOfStream(records=count).to_bytes()
        for partition in partitions:
            self._produce(partition=partition, value=marker, headers=EndOfStream.headers())
        deadline = time.monotonic() + timeout
        while (remaining := self._producer.flush(1.0)) > 0:
            self._raise_if_failed()
            if time.monotonic() > deadline:
                raise FatalError(f"{remaining} messages to {self.topic!r} not acknowledged after {timeout:g} s")
        self._raise_if_failed()
        expected = self.sent + len(partitions)
        if self.delivered != expected:
            raise FatalError(f"only {self.delivered} of {expected} messages to {self.topic!r} were acknowledged")
        log.info("end-of-stream marker written", extra={"partitions": partitions, "records": count})

    def close(self) -> None:
        """Drop the producer without waiting (the run failed or was stopped)."""
        self._producer.purge()
        self._producer.flush(0)
