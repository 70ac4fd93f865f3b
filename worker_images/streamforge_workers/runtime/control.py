"""ControlListener: read `queue-control` from QUEUE_CREATED_AT, without a shared group.

The consumer is *assigned* every partition of the control topic at the offsets of
`settings.queue_created_at_ms` (offsets_for_times), so a command sent before the worker
started is still seen, and no two workers share (or steal) a consumer group. It never commits:
the group id exists only because librdkafka wants one.

`ready` is set once the listener is assigned AND has read everything that was already on the
topic at that moment, so after `ready` a stop sent before the worker started is already in
`stop_requested`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streamforge.contracts.config import RunEnv
from streamforge.contracts.kafka_logging import kafka_client_logger
from streamforge.contracts.messages import Command, CommandName, MessageError, parse_command

log = logging.getLogger("streamforge.control")

METADATA_TIMEOUT = 10.0
POLL_SECONDS = 0.2


def control_consumer_config(settings: RunEnv) -> dict[str, Any]:
    return settings.kafka_config() | {
        "group.id": f"streamforge-control-{settings.telemetry_producer_id}",
        "client.id": f"{settings.telemetry_producer_id}-control",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "latest",
        "enable.partition.eof": True,
        "logger": kafka_client_logger(),
    }


def start_offsets(
    consumer: Consumer, topic: str, since_ms: int, timeout: float = METADATA_TIMEOUT
) -> tuple[list[TopicPartition], dict[int, int]]:
    """Concrete offsets of every partition of `topic` at `since_ms`, and the high watermarks.

    Where no message is at or after `since_ms`, the high watermark read *before* the time
    lookup is used (never the symbolic OFFSET_END, which would be resolved later and could skip
    a command produced in between).
    """
    metadata = consumer.list_topics(topic, timeout=timeout)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        reason = info.error if info is not None and info.error is not None else "no partitions"
        raise KafkaException(f"topic {topic!r} is not available: {reason}")
    partitions = sorted(info.partitions)
    highs = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in partitions}
    found = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in partitions], timeout=timeout)
    result = []
    for tp in found:
        if tp.error is not None:
            raise KafkaException(tp.error)
        offset = tp.offset if tp.offset >= 0 else highs[tp.partition]
        result.append(TopicPartition(topic, tp.partition, offset))
    return result, highs


class ControlListener:
    def __init__(
        self,
        settings: RunEnv,
        component: str,
        on_command: Callable[[Command], None] | None = None,
    ) -> None:
        self.settings = settings
        self.component = str(component)
        self.on_command = on_command
        self.ready = threading.Event()
        self.stop_requested = threading.Event()
        self.stop_command: Command | None = None
        self.commands_seen = 0
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="control-listener", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        topic = self.settings.queue_control_topic
        try:
            consumer = Consumer(control_consumer_config(self.settings))
        except KafkaException as exc:
            log.error("control listener cannot create its consumer: %s", exc)
            return
        try:
            assigned = self._assign(consumer, topic)
            if assigned is None:
                return
            assignment, highs = assigned
            # Everything already on the topic when we looked must be read before `ready`.
            pending = {tp.partition: highs[tp.partition] for tp in assignment if highs[tp.partition] > tp.offset}
            while not self._closing.is_set():
                if not self.ready.is_set() and not pending:
                    self.ready.set()
                    log.info("control listener ready on %s", topic)
                msg = consumer.poll(POLL_SECONDS)
                if msg is None:
                    continue
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        pending.pop(msg.partition(), None)
                    else:
                        log.warning("control consumer error: %s", msg.error())
                    continue
                if pending.get(msg.partition(), 0) <= msg.offset() + 1:
                    pending.pop(msg.partition(), None)
                self._handle(msg.value(), msg.partition(), msg.offset())
        except Exception:
            log.exception("control listener failed; commands are no longer read")
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer, topic: str) -> tuple[list[TopicPartition], dict[int, int]] | None:
        delay = 0.5
        while not self._closing.is_set():
            try:
                assignment, highs = start_offsets(consumer, topic, self.settings.queue_created_at_ms)
            except KafkaException as exc:
                log.warning("control listener: cannot assign %s yet (%s); retrying", topic, exc)
                self._closing.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            consumer.assign(assignment)
            log.info(
                "control listener assigned %s",
                topic,
                extra={
                    "offsets": {tp.partition: tp.offset for tp in assignment},
                    "since_ms": self.settings.queue_created_at_ms,
                },
            )
            return assignment, highs
        return None

    def _handle(self, raw: bytes | None, partition: int, offset: int) -> None:
        try:
            cmd = parse_command(raw or b"")
        except MessageError as exc:
            log.warning("skipping unreadable control message at %d:%d: %s", partition, offset, exc)
            return
        if not cmd.applies_to(self.settings.queue_id, self.component):
            log.debug("ignoring command for %s/%s", cmd.queue_id, cmd.target)
            return
        self.commands_seen += 1
        log.info(
            "command %s received",
            cmd.command.value,
            extra={"command": cmd.model_dump(mode="json"), "age_s": round(time.time() - cmd.sent_at, 3)},
        )
        if cmd.command is CommandName.STOP and self.stop_command is None:
            self.stop_command = cmd
            self.stop_requested.set()
        if self.on_command is not None:
            try:
                self.on_command(cmd)
            except Exception:
                log.exception("handling command %s failed", cmd.command.value)
