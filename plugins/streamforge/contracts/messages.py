"""Messages on the control topics (ARCHITECTURE §3).

Writers build messages through these models, so a required field is never omitted
(`extra="forbid"`). Readers go through `parse_event` / `parse_command`, which drop unknown
fields first: a newer writer may add fields without breaking older readers.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MESSAGE_VERSION = 1


class Status(StrEnum):
    STARTED = "started"
    LOADING = "loading"
    FINISHED = "finished"
    ERROR = "error"
    INTERRUPTED = "interrupted"
    PONG = "pong"


TERMINAL = frozenset({Status.FINISHED, Status.ERROR, Status.INTERRUPTED})


class CommandName(StrEnum):
    STOP = "stop"
    PING = "ping"


class MessageError(ValueError):
    """A control-topic message that cannot be read."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = MESSAGE_VERSION
    queue_id: str = Field(min_length=1)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    def kafka_key(self) -> bytes:
        """Key = queue_id, so one run's messages stay ordered in one partition."""
        return self.queue_id.encode()

    @classmethod
    def parse(cls, raw: bytes | str | dict[str, Any]) -> Self:
        """Read a message, ignoring fields this version does not know."""
        try:
            data = json.loads(raw) if isinstance(raw, bytes | str) else dict(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MessageError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise MessageError(f"expected a JSON object, got {type(data).__name__}")
        known = {k: v for k, v in data.items() if k in cls.model_fields}
        try:
            return cls.model_validate(known)
        except ValidationError as exc:
            raise MessageError(f"invalid {cls.__name__}: {exc}") from exc


class Event(_Message):
    """A worker's telemetry on `queue-events`."""

    producer: str = Field(min_length=1)
    component: str = Field(min_length=1)
    symbol: str
    type: str
    status: Status
    message: str = ""
    records_written: int = Field(default=0, ge=0)
    finished: bool = False
    timestamp: float = Field(default_factory=time.time)
    error_message: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _finished_exactly_on_terminal(self) -> Self:
        if self.finished != (self.status in TERMINAL):
            raise ValueError(f"finished must be {self.status in TERMINAL} for status {self.status}")
        if self.status is Status.ERROR and not self.error_message:
            raise ValueError("an error event needs error_message")
        return self

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


class Command(_Message):
    """A command on `queue-control`."""

    command: CommandName
    target: str | None = None
    reason: str | None = None
    sent_at: float = Field(default_factory=time.time)

    def applies_to(self, queue_id: str, component: str) -> bool:
        """Exact queue_id; target null means every component of the queue."""
        return self.queue_id == queue_id and self.target in (None, component)


def parse_event(raw: bytes | str | dict[str, Any]) -> Event:
    return Event.parse(raw)


def parse_command(raw: bytes | str | dict[str, Any]) -> Command:
    return Command.parse(raw)


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas shipped in `schemas/` (generated; a test fails if they drift)."""
    return {
        "event.schema.json": Event.model_json_schema(mode="serialization"),
        "command.schema.json": Command.model_json_schema(mode="serialization"),
        "end-of-stream.schema.json": _eos_schema(),
    }


def _eos_schema() -> dict[str, Any]:
    from streamforge.contracts.records import EndOfStream

    return EndOfStream.model_json_schema(mode="serialization")
