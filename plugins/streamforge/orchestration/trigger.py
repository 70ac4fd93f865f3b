"""`QueueOutcomeTrigger`: waits in the triggerer for a run's outcome on queue-events.

Imported by the triggerer from the installed `streamforge` package. The deadline is checked
inside the trigger (dag.test ignores trigger timeouts), so it always ends: with the outcome,
with a timeout outcome, or with an error outcome if Kafka cannot be read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from confluent_kafka import Message

from streamforge.orchestration.outcome import Outcome, OutcomeTracker, Reason
from streamforge.orchestration.queue_reader import MissingTopic, QueueReader, QueueReaderError


def apply_messages(tracker: OutcomeTracker, messages: Sequence[Message], events_topic: str) -> Outcome | None:
    """Commands first, so an `interrupted` in the same batch as our `stop` reads as requested."""
    for message in messages:
        if message.topic() != events_topic:
            tracker.feed_command_bytes(message.value())
    for message in messages:
        if message.topic() == events_topic:
            tracker.feed_event_bytes(message.value())
    return tracker.outcome


def reader_failure(queue_id: str, exc: Exception) -> Outcome:
    return Outcome(
        queue_id=queue_id,
        success=False,
        reason=Reason.ERROR,
        message=f"cannot read the run's events: {exc}",
        error=str(exc),
    )


class QueueOutcomeTrigger(BaseTrigger):
    def __init__(
        self,
        *,
        kafka_config_id: str,
        queue_id: str,
        events_topic: str,
        control_topic: str,
        loader_producer: str,
        sink_producer: str,
        since_ms: int,
        deadline: str,
        poll_timeout: float = 1.0,
    ) -> None:
        super().__init__()
        self.kafka_config_id = kafka_config_id
        self.queue_id = queue_id
        self.events_topic = events_topic
        self.control_topic = control_topic
        self.loader_producer = loader_producer
        self.sink_producer = sink_producer
        self.since_ms = since_ms
        self.deadline = deadline
        self.poll_timeout = poll_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "kafka_config_id": self.kafka_config_id,
                "queue_id": self.queue_id,
                "events_topic": self.events_topic,
                "control_topic": self.control_topic,
                "loader_producer": self.loader_producer,
                "sink_producer": self.sink_producer,
                "since_ms": self.since_ms,
                "deadline": self.deadline,
                "poll_timeout": self.poll_timeout,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = datetime.fromisoformat(self.deadline)
        tracker = OutcomeTracker(self.queue_id, self.loader_producer, self.sink_producer)
        reader = QueueReader(
            self.kafka_config_id, self.queue_id, [self.events_topic, self.control_topic], self.since_ms
        )
        # One thread owns the consumer: librdkafka consumers are not safe across threads, and a
        # cancelled trigger must not close the consumer while a poll is still running in it.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamforge-outcome")
        loop = asyncio.get_running_loop()

        def call(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
            return loop.run_in_executor(executor, fn, *args)

        try:
            await self._open(call, reader, deadline)
            while True:
                messages = await call(reader.poll, self.poll_timeout)
                outcome = apply_messages(tracker, messages, self.events_topic)
                if outcome is None and datetime.now(UTC) >= deadline:
                    outcome = tracker.expire(deadline)
                if outcome is not None:
                    self.log.info("outcome of %s: %s", self.queue_id, outcome.message)
                    yield TriggerEvent(outcome.model_dump(mode="json"))
                    return
        except QueueReaderError as exc:
            yield TriggerEvent(reader_failure(self.queue_id, exc).model_dump(mode="json"))
        finally:
            executor.submit(reader.close)
            executor.shutdown(wait=False)

    async def _open(self, call: Callable[..., Any], reader: QueueReader, deadline: datetime) -> None:
        """Kafka may be briefly unreachable (broker restart, rolling update): retry until the
        run's deadline with growing pauses. A missing topic is a deployment error: fail at once."""
        delay, attempt = 1.0, 1
        while True:
            try:
                await call(reader.open)
                return
            except MissingTopic:
                raise
            except QueueReaderError as exc:
                if datetime.now(UTC) + timedelta(seconds=delay) >= deadline:
                    raise QueueReaderError(f"{exc} (gave up after {attempt} attempts)") from exc
                self.log.warning("cannot read the run's events yet (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay, attempt = min(delay * 2, 30.0), attempt + 1
