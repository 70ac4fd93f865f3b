"""Read one run's messages from queue-events and queue-control, from QUEUE_CREATED_AT on.

Built on the Kafka provider's consumer hook (connection `streamforge_kafka`), with what the
stock AwaitMessageSensor lacks: a consumer group of our own per queue (never the connection's
`group.id`, so concurrent runs never split partitions or commit past each other), `assign`
at `offsets_for_times(QUEUE_CREATED_AT)` instead of subscribe, no commits, and no sleep after
a non-matching message. Used in a thread by the trigger, and directly by reschedule pokes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook
from confluent_kafka import Consumer, Message, TopicPartition

from streamforge.contracts.kafka_errors import is_fatal, is_partition_eof
from streamforge.contracts.kafka_logging import kafka_client_logger

log = logging.getLogger(__name__)

METADATA_TIMEOUT = 15.0


class QueueReaderError(RuntimeError):
    """Kafka cannot be read (topic missing, broker unreachable...)."""


class MissingTopic(QueueReaderError):
    """A control topic does not exist: a deployment error, not worth waiting for."""


class QueueConsumerHook(KafkaConsumerHook):
    """The provider's consumer hook with per-consumer overrides of the connection's config."""

    def __init__(self, kafka_config_id: str, overrides: dict[str, Any]) -> None:
        super().__init__(topics=[], kafka_config_id=kafka_config_id)
        self.overrides = overrides

    def _get_client(self, config: dict[str, Any]) -> Consumer:
        return super()._get_client({**config, **self.overrides})


def consumer_overrides(queue_id: str) -> dict[str, Any]:
    return {
        "group.id": f"streamforge-outcome-{queue_id}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "logger": kafka_client_logger(),
    }


class QueueReader:
    """A consumer assigned to every partition of `topics` at the offsets of `since_ms`."""

    def __init__(self, kafka_config_id: str, queue_id: str, topics: Sequence[str], since_ms: int) -> None:
        self.kafka_config_id = kafka_config_id
        self.queue_id = queue_id
        self.key = queue_id.encode()
        self.topics = list(topics)
        self.since_ms = since_ms
        self.consumer: Consumer | None = None
        self.assigned: list[TopicPartition] = []
        self._at_end: set[tuple[str, int]] = set()

    def open(self) -> QueueReader:
        consumer = QueueConsumerHook(self.kafka_config_id, consumer_overrides(self.queue_id)).get_conn
        self.consumer = consumer
        try:
            metadata = consumer.list_topics(timeout=METADATA_TIMEOUT)
            partitions: list[TopicPartition] = []
            for topic in self.topics:
                info = metadata.topics.get(topic)
                if info is None or info.error is not None or not info.partitions:
                    raise MissingTopic(f"Kafka topic {topic!r} does not exist (create the control topics first)")
                partitions += [TopicPartition(topic, p) for p in sorted(info.partitions)]
            # High watermarks BEFORE the time lookup: a partition with nothing at/after since_ms
            # starts at this offset, so a message written in between is still read.
            highs = {
                (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=METADATA_TIMEOUT)[1]
                for tp in partitions
            }
            wanted = [TopicPartition(tp.topic, tp.partition, self.since_ms) for tp in partitions]
            found = consumer.offsets_for_times(wanted, timeout=METADATA_TIMEOUT)
        except QueueReaderError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise QueueReaderError(f"cannot read {', '.join(self.topics)}: {exc}") from exc
        self.assigned = [
            TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else highs[(tp.topic, tp.partition)])
            for tp in found
        ]
        consumer.assign(self.assigned)
        log.info(
            "reading %s for %s from %s",
            ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in self.assigned),
            self.queue_id,
            self.since_ms,
        )
        return self

    def poll(self, timeout: float = 1.0, max_messages: int = 500) -> list[Message]:
        """This queue's messages among the next batch (others are dropped unparsed, by key)."""
        if self.consumer is None:
            raise QueueReaderError("reader is not open")
        ours = []
        for message in self.consumer.consume(num_messages=max_messages, timeout=timeout):
            error = message.error()
            if error is not None:
                if is_partition_eof(error):
                    self._at_end.add((message.topic(), message.partition()))
                    continue
                if is_fatal(error):
                    raise QueueReaderError(f"Kafka error while reading {message.topic()}: {error}")
                log.warning("Kafka: %s", error)
                continue
            self._at_end.discard((message.topic(), message.partition()))
            if message.key() == self.key:
                ours.append(message)
        return ours

    @property
    def caught_up(self) -> bool:
        """Every assigned partition has been read to its end at least once."""
        return len(self._at_end) >= len(self.assigned)

    def read_to_end(self, limit_seconds: float = 30.0) -> list[Message]:
        """Everything of this queue written so far (for reschedule pokes)."""
        deadline = time.monotonic() + limit_seconds
        messages: list[Message] = []
        while not self.caught_up:
            if time.monotonic() > deadline:
                raise QueueReaderError(f"could not read to the end of {', '.join(self.topics)} in {limit_seconds}s")
            messages += self.poll(timeout=0.5)
        return messages

    def close(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            try:
                consumer.close()
            except Exception:  # closing must not hide the real result
                log.warning("failed to close the Kafka consumer", exc_info=True)

    def __enter__(self) -> QueueReader:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
