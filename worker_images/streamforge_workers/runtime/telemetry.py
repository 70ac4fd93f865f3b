"""Telemetry: build `Event`s and produce them to `queue-events` (key = queue_id)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streamforge.contracts.config import RunEnv
from streamforge.contracts.kafka_logging import kafka_client_logger
from streamforge.contracts.messages import TERMINAL, Event, Status
from streamforge_workers.runtime.metrics import EVENTS

log = logging.getLogger("streamforge.telemetry")

TERMINAL_FLUSH_SECONDS = 10.0


def producer_config(settings: RunEnv, client_id: str) -> dict[str, Any]:
    """Idempotent producer for small JSON messages."""
    return settings.kafka_config() | {
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        # A terminal event that cannot be delivered within this time is reported as lost.
        "message.timeout.ms": 60_000,
        "logger": kafka_client_logger(),
    }


class Telemetry:
    """One worker's event stream. Thread-safe (pongs are emitted from the control thread).

    At most one terminal event (`finished` | `error` | `interrupted`) is ever produced, and it is
    the last: any later event is logged and dropped (a second terminal emit returns the first).
    """

    def __init__(
        self,
        settings: RunEnv,
        component: str,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.settings = settings
        self.component = str(component)
        self.on_event = on_event
        self.terminal: Event | None = None
        self.delivery_failures = 0
        self._lock = threading.Lock()
        self._producer = Producer(producer_config(settings, f"{settings.telemetry_producer_id}-telemetry"))

    def emit(
        self,
        status: Status,
        message: str = "",
        *,
        records_written: int = 0,
        error_message: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Event:
        status = Status(status)
        if status is Status.ERROR and not error_message:
            error_message = message or "unknown error"
        s = self.settings
        event = Event(
            queue_id=s.queue_id,
            producer=s.telemetry_producer_id,
            component=self.component,
            symbol=s.symbol,
            type=s.type,
            status=status,
            message=message,
            records_written=max(0, int(records_written)),
            finished=status in TERMINAL,
            error_message=error_message,
            extra=dict(extra or {}),
        )
        with self._lock:
            if self.terminal is not None:
                # Nothing follows the terminal event: not a second terminal, not a late pong.
                log.warning(
                    "dropping %s event after the terminal %s event",
                    status.value,
                    self.terminal.status.value,
                )
                return self.terminal if event.is_terminal else event
            if event.is_terminal:
                self.terminal = event
            self._producer.produce(
                s.queue_events_topic,
                key=event.kafka_key(),
                value=event.to_bytes(),
                on_delivery=self._delivered,
            )
        self._producer.poll(0)
        EVENTS.labels(self.component, status.value).inc()
        level = logging.ERROR if status is Status.ERROR else logging.INFO
        log.log(
            level,
            "event %s: %s",
            status.value,
            message or error_message or "",
            extra={"event": event.model_dump(mode="json")},
        )
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("on_event hook failed")
        if event.is_terminal:
            self.flush(TERMINAL_FLUSH_SECONDS)
        return event

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.delivery_failures += 1
            log.error("telemetry event not delivered to %s: %s", msg.topic(), err)

    def flush(self, timeout: float = TERMINAL_FLUSH_SECONDS) -> bool:
        """Wait for delivery; False (and an error log) if something is still pending."""
        remaining = self._producer.flush(timeout)
        if remaining:
            log.error("%d telemetry event(s) still undelivered after %.0f s", remaining, timeout)
        return remaining == 0

    def close(self, timeout: float = 10) -> None:
        self.flush(timeout)
