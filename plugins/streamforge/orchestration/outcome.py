"""The outcome rule of a run (ARCHITECTURE §3), as a pure state machine over one queue's messages.

success = the sink's `finished` with records_written equal to the loader's `finished` count;
failure = any `error`, an `interrupted` (reported as `stopped` when the DAG had sent `stop` for
the queue, else as `interrupted`), a count mismatch, or the deadline passing first.

Workers are identified by the telemetry producer ids the plan gave them, so a message of
another run (other queue_id) or another attempt (other h6) can never decide this one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streamforge.contracts.messages import (
    Command,
    CommandName,
    Event,
    MessageError,
    Status,
    parse_command,
    parse_event,
)

log = logging.getLogger(__name__)


class Reason(StrEnum):
    OK = "ok"
    ERROR = "error"
    INTERRUPTED = "interrupted"
    STOPPED = "stopped"
    MISMATCH = "mismatch"
    TIMEOUT = "timeout"


class Outcome(BaseModel):
    """What `await_outcome` returns (XCom) and what alerts quote."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_id: str
    success: bool
    reason: Reason
    message: str
    loader_records: int | None = None
    sink_records: int | None = None
    producers: dict[str, str] = Field(default_factory=dict)  # producer id -> last status
    error: str | None = None
    events_seen: int = 0
    # The loader's exchange gaps and archive repairs (its `finished` event's extra).
    gaps: list[dict[str, Any]] = Field(default_factory=list)
    repairs: list[dict[str, Any]] = Field(default_factory=list)
    # The worker whose event decided a failure (`error` / `interrupted`): the run's root cause.
    producer: str | None = None


class OutcomeTracker:
    """Feed it this queue's events and commands; it answers once the outcome is decided."""

    def __init__(self, queue_id: str, loader_producer: str, sink_producer: str) -> None:
        self.queue_id = queue_id
        self.loader_producer = loader_producer
        self.sink_producer = sink_producer
        self.loader_records: int | None = None
        self.sink_records: int | None = None
        self.loader_extra: dict[str, Any] = {}
        self.producers: dict[str, str] = {}
        self.stop: Command | None = None
        self.events_seen = 0
        self.skipped = 0
        self.outcome: Outcome | None = None

    # -- input ------------------------------------------------------------------------------

    def feed_event_bytes(self, raw: bytes | None) -> Outcome | None:
        if raw is None:
            return self.outcome
        try:
            event = parse_event(raw)
        except MessageError as exc:
            self.skipped += 1
            log.warning("skipping an unreadable event of %s: %s", self.queue_id, exc)
            return self.outcome
        return self.feed_event(event)

    def feed_command_bytes(self, raw: bytes | None) -> None:
        if raw is None:
            return
        try:
            self.feed_command(parse_command(raw))
        except MessageError as exc:
            log.warning("skipping an unreadable command of %s: %s", self.queue_id, exc)

    def feed_command(self, command: Command) -> None:
        if command.queue_id == self.queue_id and command.command is CommandName.STOP and self.stop is None:
            self.stop = command

    def feed_event(self, event: Event) -> Outcome | None:
        if self.outcome is not None or event.queue_id != self.queue_id:
            return self.outcome
        self.events_seen += 1
        self.producers[event.producer] = event.status.value
        who = f"{event.component} ({event.producer})"
        if event.status is Status.ERROR:
            return self._decide(
                Reason.ERROR,
                f"{who} reported an error: {event.error_message}",
                error=event.error_message,
                producer=event.producer,
            )
        if event.status is Status.INTERRUPTED:
            if self.stop is not None:
                return self._decide(
                    Reason.STOPPED,
                    f"{who} stopped on the DAG's request ({self.stop.reason or 'no reason given'})",
                    error=self.stop.reason,
                )
            detail = event.message or "no reason given"
            return self._decide(
                Reason.INTERRUPTED,
                f"{who} was interrupted although the DAG sent no stop: {detail}",
                error=detail,
                producer=event.producer,
            )
        if event.status is Status.FINISHED:
            if event.producer == self.loader_producer:
                self.loader_records = event.records_written
                self.loader_extra = event.extra
            elif event.producer == self.sink_producer:
                self.sink_records = event.records_written
            else:
                log.info("ignoring `finished` of unexpected producer %s on %s", event.producer, self.queue_id)
        if self.loader_records is not None and self.sink_records is not None:
            if self.loader_records == self.sink_records:
                return self._decide(Reason.OK, f"loader produced and sink wrote {self.sink_records} records")
            return self._decide(
                Reason.MISMATCH,
                f"sink wrote {self.sink_records} records but the loader produced {self.loader_records}",
                error="record count mismatch",
            )
        return None

    def expire(self, deadline: datetime) -> Outcome:
        """The deadline passed before the outcome was decided."""
        if self.outcome is not None:
            return self.outcome
        waiting = [
            name
            for name, producer, count in (
                ("loader", self.loader_producer, self.loader_records),
                ("sink", self.sink_producer, self.sink_records),
            )
            if count is None
        ]
        seen = ", ".join(f"{p}={s}" for p, s in sorted(self.producers.items())) or "no events at all"
        return self._decide(
            Reason.TIMEOUT,
            f"no outcome by the deadline {deadline.astimezone(UTC).isoformat()}: still waiting for "
            f"{' and '.join(waiting)} to finish (seen: {seen}); raise `timeout_minutes` if the window is big",
            error="timeout",
        )

    # -- output -----------------------------------------------------------------------------

    def _decide(self, reason: Reason, message: str, error: str | None = None, producer: str | None = None) -> Outcome:
        self.outcome = Outcome(
            queue_id=self.queue_id,
            success=reason is Reason.OK,
            reason=reason,
            message=message,
            loader_records=self.loader_records,
            sink_records=self.sink_records,
            producers=dict(self.producers),
            error=error,
            events_seen=self.events_seen,
            producer=producer,
            gaps=list(self.loader_extra.get("gaps") or []),
            repairs=list(self.loader_extra.get("repairs") or []),
        )
        return self.outcome
