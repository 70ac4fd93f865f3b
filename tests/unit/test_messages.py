"""Messages (ARCHITECTURE §3): strict on write, tolerant on read, schemas shipped and in sync."""

import json

import pytest
from pydantic import ValidationError

from streamforge.contracts.__main__ import SCHEMA_DIR, render
from streamforge.contracts.messages import (
    Command,
    Event,
    MessageError,
    Status,
    parse_command,
    parse_event,
)

DESIGN_EVENT = {
    "version": 1,
    "queue_id": "wf-btcusdt-api_candles_1m-20240801-abc123",
    "producer": "arango-candles__abc123",
    "component": "arango-candles",
    "symbol": "BTCUSDT",
    "type": "api_candles_1m",
    "status": "loading",
    "message": "wrote 1000 records",
    "records_written": 1000,
    "finished": False,
    "timestamp": 1722470400.25,
    "error_message": None,
    "extra": {},
}
DESIGN_COMMAND = {
    "version": 1,
    "command": "stop",
    "queue_id": "wf-btcusdt-api_candles_1m-20240801-abc123",
    "target": None,
    "reason": "sink reported error",
    "sent_at": 1722470500.0,
}


def test_design_examples_round_trip() -> None:
    event = parse_event(json.dumps(DESIGN_EVENT).encode())
    assert json.loads(event.to_bytes()) == DESIGN_EVENT
    command = parse_command(json.dumps(DESIGN_COMMAND))
    assert json.loads(command.to_bytes()) == DESIGN_COMMAND
    assert event.kafka_key() == b"wf-btcusdt-api_candles_1m-20240801-abc123"


def test_readers_ignore_unknown_fields() -> None:
    event = parse_event({**DESIGN_EVENT, "kafka": "broker:9093", "new_field": [1, 2]})
    assert event.records_written == 1000
    assert parse_command({**DESIGN_COMMAND, "symbol": "BTCUSDT"}).command == "stop"


def test_writers_cannot_add_or_omit_fields() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Event(**DESIGN_EVENT, kafka="x")
    without_producer = {k: v for k, v in DESIGN_EVENT.items() if k != "producer"}
    with pytest.raises(ValidationError, match="producer"):
        Event(**without_producer)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"status": "finished", "finished": False}, "finished must be True for status finished"),
        ({"status": "loading", "finished": True}, "finished must be False for status loading"),
        ({"status": "error", "finished": True, "error_message": None}, "an error event needs error_message"),
        ({"status": "done"}, "Input should be 'started', 'loading'"),
        ({"records_written": -1}, "greater than or equal to 0"),
        ({"version": 2}, "Input should be 1"),
    ],
)
def test_inconsistent_events_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(MessageError, match=message):
        parse_event({**DESIGN_EVENT, **changes})


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe", b'{"queue_id": ""}'])
def test_unreadable_messages_raise_message_error(raw: bytes) -> None:
    with pytest.raises(MessageError):
        parse_command(raw)


def test_command_applies_to_exact_queue_and_optional_target() -> None:
    stop = Command(command="stop", queue_id="wf-a-1")
    assert stop.applies_to("wf-a-1", "loader")
    assert not stop.applies_to("wf-a-10", "loader")
    assert not stop.applies_to("wf-a", "loader")
    targeted = Command(command="ping", queue_id="wf-a-1", target="dummy-service")
    assert targeted.applies_to("wf-a-1", "dummy-service")
    assert not targeted.applies_to("wf-a-1", "loader")


def test_terminal_statuses() -> None:
    finished = Event(**{**DESIGN_EVENT, "status": Status.FINISHED, "finished": True})
    assert finished.is_terminal
    assert not Event(**DESIGN_EVENT).is_terminal


def test_shipped_json_schemas_match_the_models() -> None:
    for name, text in render().items():
        shipped = SCHEMA_DIR / name
        assert shipped.exists(), f"{name} missing: run `python -m streamforge.contracts write-schemas`"
        assert shipped.read_text() == text, f"{name} drifted: run `python -m streamforge.contracts write-schemas`"
