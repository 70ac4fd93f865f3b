"""The outcome rule: pure tracker, and the trigger / reschedule poke against the real broker.

Events are produced here as the workers would (key = queue_id, contracts.messages.Event);
runs of other queues and events from before QUEUE_CREATED_AT are mixed in and must not count.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamforge.contracts.messages import Command, CommandName, Event, Status
from streamforge.orchestration.outcome import OutcomeTracker, Reason

CONN_ID = "streamforge_kafka_test"


def event(queue_id: str, producer: str, status: Status, records: int = 0, error: str | None = None) -> Event:
    component = producer.split("__")[0]
    return Event(
        queue_id=queue_id,
        producer=producer,
        component=component,
        symbol="BTCUSDT",
        type="api_candles_1m",
        status=status,
        records_written=records,
        finished=status in (Status.FINISHED, Status.ERROR, Status.INTERRUPTED),
        error_message=error,
    )


# ------------------------------------------------------------------------------------------- pure


def test_success_needs_both_counts_equal() -> None:
    tracker = OutcomeTracker("q1", "loader__aaaaaa", "arango-candles__aaaaaa")
    assert tracker.feed_event(event("q1", "loader__aaaaaa", Status.STARTED)) is None
    assert tracker.feed_event(event("q1", "arango-candles__aaaaaa", Status.FINISHED, 1440)) is None
    assert tracker.feed_event(event("q2", "loader__bbbbbb", Status.ERROR, error="other run")) is None
    outcome = tracker.feed_event(event("q1", "loader__aaaaaa", Status.FINISHED, 1440))
    assert outcome and outcome.success and outcome.reason is Reason.OK
    assert (outcome.loader_records, outcome.sink_records) == (1440, 1440)
    assert outcome.producers == {"loader__aaaaaa": "finished", "arango-candles__aaaaaa": "finished"}


@pytest.mark.parametrize(
    ("events", "reason", "text"),
    [
        (
            [("loader__a", Status.FINISHED, 10), ("sink__a", Status.FINISHED, 9)],
            Reason.MISMATCH,
            "sink wrote 9 records but the loader produced 10",
        ),
        ([("sink__a", Status.ERROR, 0)], Reason.ERROR, "sink (sink__a) reported an error: boom"),
        ([("loader__a", Status.INTERRUPTED, 0)], Reason.INTERRUPTED, "although the DAG sent no stop"),
        ([("other__x", Status.FINISHED, 5), ("loader__a", Status.ERROR, 0)], Reason.ERROR, "boom"),
    ],
)
def test_failures(events: list[tuple[str, Status, int]], reason: Reason, text: str) -> None:
    tracker = OutcomeTracker("q", "loader__a", "sink__a")
    for producer, status, records in events:
        tracker.feed_event(event("q", producer, status, records, "boom" if status is Status.ERROR else None))
    assert tracker.outcome is not None and not tracker.outcome.success
    assert tracker.outcome.reason is reason and text in tracker.outcome.message


def test_requested_stop_and_timeout() -> None:
    tracker = OutcomeTracker("q", "loader__a", "sink__a")
    tracker.feed_command(Command(command=CommandName.STOP, queue_id="q", reason="sink failed"))
    outcome = tracker.feed_event(event("q", "loader__a", Status.INTERRUPTED))
    assert outcome and outcome.reason is Reason.STOPPED and "sink failed" in outcome.message
    idle = OutcomeTracker("q", "loader__a", "sink__a")
    idle.feed_event(event("q", "loader__a", Status.FINISHED, 3))
    expired = idle.expire(datetime(2026, 1, 1, tzinfo=UTC))
    assert expired.reason is Reason.TIMEOUT and "waiting for sink" in expired.message


def test_unreadable_messages_are_skipped() -> None:
    tracker = OutcomeTracker("q", "loader__a", "sink__a")
    assert tracker.feed_event_bytes(b"not json") is None and tracker.skipped == 1
    assert tracker.feed_event_bytes(json.dumps({"queue_id": "q"}).encode()) is None


# ------------------------------------------------------------------------------------------- Kafka


@pytest.fixture
def kafka_conn(kafka_broker, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[no-untyped-def]
    # A group.id in the connection must NOT be used by the outcome consumer.
    extra = {"bootstrap.servers": kafka_broker.bootstrap, "group.id": "shared-by-everyone"}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "kafka", "extra": extra}))
    return CONN_ID


@pytest.fixture
def produce(kafka_broker) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    from confluent_kafka import Producer

    producer = Producer(kafka_broker.client_config())

    def send(*messages: Event | Command) -> None:
        for message in messages:
            topic = "queue-events" if isinstance(message, Event) else "queue-control"
            producer.produce(topic, key=message.kafka_key(), value=message.to_bytes())
        assert producer.flush(10) == 0

    yield send
    producer.flush(10)


def _trigger(queue_id: str, since_ms: int, deadline: datetime, conn: str):  # type: ignore[no-untyped-def]
    from streamforge.orchestration.trigger import QueueOutcomeTrigger

    return QueueOutcomeTrigger(
        kafka_config_id=conn,
        queue_id=queue_id,
        events_topic="queue-events",
        control_topic="queue-control",
        loader_producer="loader__aaaaaa",
        sink_producer="arango-candles__aaaaaa",
        since_ms=since_ms,
        deadline=deadline.isoformat(),
        poll_timeout=0.5,
    )


async def _first(trigger: Any) -> dict[str, Any]:
    async for item in trigger.run():
        return item.payload
    raise AssertionError("the trigger ended without an event")


def _run(trigger: Any, limit: float = 60) -> dict[str, Any]:
    return asyncio.run(asyncio.wait_for(_first(trigger), limit))


@pytest.mark.kafka
def test_trigger_decides_on_its_own_events_only(kafka_conn: str, produce: Any) -> None:
    queue_id, other = f"wf-test-{uuid.uuid4().hex[:6]}", f"wf-test-{uuid.uuid4().hex[:6]}"
    # Before QUEUE_CREATED_AT: an error for this very queue must not be read.
    produce(event(queue_id, "loader__aaaaaa", Status.ERROR, error="from before the run"))
    time.sleep(0.05)
    since_ms = int(time.time() * 1000)
    produce(
        event(queue_id, "loader__aaaaaa", Status.STARTED),
        event(other, "loader__bbbbbb", Status.ERROR, error="another run failed"),
        event(other, "arango-candles__bbbbbb", Status.FINISHED, 7),
        event(queue_id, "arango-candles__aaaaaa", Status.FINISHED, 1440),
        event(queue_id, "loader__aaaaaa", Status.FINISHED, 1440),
    )
    trigger = _trigger(queue_id, since_ms, datetime.now(UTC) + timedelta(minutes=1), kafka_conn)
    assert trigger.serialize()[0] == "streamforge.orchestration.trigger.QueueOutcomeTrigger"
    payload = _run(trigger)
    assert payload["success"] is True, payload
    assert (payload["loader_records"], payload["sink_records"]) == (1440, 1440)
    assert set(payload["producers"]) == {"loader__aaaaaa", "arango-candles__aaaaaa"}


@pytest.mark.kafka
def test_trigger_sees_events_written_after_it_started(kafka_conn: str, produce: Any) -> None:
    queue_id = f"wf-test-{uuid.uuid4().hex[:6]}"
    since_ms = int(time.time() * 1000)

    async def scenario() -> dict[str, Any]:
        task = asyncio.create_task(
            _first(_trigger(queue_id, since_ms, datetime.now(UTC) + timedelta(minutes=1), kafka_conn))
        )
        await asyncio.sleep(2)
        produce(event(queue_id, "arango-candles__aaaaaa", Status.ERROR, error="disk full"))
        return await asyncio.wait_for(task, 60)

    payload = asyncio.run(scenario())
    assert payload["success"] is False and payload["reason"] == "error"
    assert "disk full" in payload["message"] and payload["error"] == "disk full"


@pytest.mark.kafka
def test_trigger_deadline(kafka_conn: str) -> None:
    began = time.monotonic()
    payload = _run(
        _trigger(
            f"wf-test-{uuid.uuid4().hex[:6]}",
            int(time.time() * 1000),
            datetime.now(UTC) + timedelta(seconds=2),
            kafka_conn,
        )
    )
    assert payload["reason"] == "timeout" and "no events at all" in payload["message"]
    assert time.monotonic() - began < 20


@pytest.mark.kafka
def test_trigger_reports_a_missing_topic(kafka_conn: str) -> None:
    from streamforge.orchestration.trigger import QueueOutcomeTrigger

    trigger = QueueOutcomeTrigger(
        kafka_config_id=kafka_conn,
        queue_id="q",
        events_topic="no-such-topic",
        control_topic="queue-control",
        loader_producer="l",
        sink_producer="s",
        since_ms=0,
        deadline=(datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
    )
    payload = _run(trigger)
    assert payload["reason"] == "error" and "no-such-topic" in payload["message"]


@pytest.mark.kafka
def test_trigger_retries_an_unreachable_broker_until_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamforge.orchestration import queue_reader
    from streamforge.stack.ports import free_port

    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    conn = json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": closed}})
    monkeypatch.setenv("AIRFLOW_CONN_STREAMFORGE_KAFKA_DOWN", conn)
    monkeypatch.setattr(queue_reader, "METADATA_TIMEOUT", 1.0)
    began = time.monotonic()
    payload = _run(_trigger("q", 0, datetime.now(UTC) + timedelta(seconds=6), "streamforge_kafka_down"))
    assert payload["reason"] == "error" and "cannot read" in payload["message"]
    attempts = int(payload["message"].split("gave up after ")[1].split(" ")[0])
    assert attempts >= 2, payload["message"]
    assert time.monotonic() - began < 30


class _FakeTI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@pytest.mark.kafka
def test_reschedule_poke_applies_the_same_rule(kafka_conn: str, produce: Any) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from streamforge.orchestration.catalog import read_catalog
    from streamforge.orchestration.plan import make_plan
    from streamforge.orchestration.sensor import QueueOutcomeSensor
    from tests.dags.helpers import DAG_1M, SHIPPED_CATALOG

    now = datetime.now(UTC)
    spec = read_catalog(SHIPPED_CATALOG, environ={}).get(DAG_1M)
    params = {"source": "auto", "batch_size": 1000, "partitions": 1, "timeout_minutes": 5}
    plans = [
        make_plan(
            spec,
            run_id=f"poke-{uuid.uuid4().hex}",
            attempt=1,
            logical_date=datetime(2024, 8, 1, tzinfo=UTC),
            run_after=now,
            params=params,
            now=now,
        ).xcom()
        for _ in range(2)
    ]
    sensors = [
        QueueOutcomeSensor(task_id=f"await_{i}", plan=p, kafka_config_id=kafka_conn, deferrable=False)
        for i, p in enumerate(plans)
    ]
    good, bad = plans
    ti = _FakeTI()
    assert sensors[0].mode == "reschedule"
    assert sensors[0].poke({"ti": ti}) is False  # nothing yet
    produce(
        event(good["queue_id"], good["producers"]["loader"], Status.FINISHED, 24),
        event(bad["queue_id"], bad["producers"]["loader"], Status.FINISHED, 24),
        event(bad["queue_id"], bad["producers"]["sink"], Status.FINISHED, 23),
        event(good["queue_id"], good["producers"]["sink"], Status.FINISHED, 24),
    )
    result = sensors[0].poke({"ti": ti})
    assert result.is_done and result.xcom_value["success"] is True
    assert ti.pushed["outcome"]["sink_records"] == 24
    with pytest.raises(AirflowFailException, match="sink wrote 23 records but the loader produced 24"):
        sensors[1].poke({"ti": ti})
    assert ti.pushed["outcome"]["reason"] == "mismatch"


def test_deferrable_sensor_defers_to_its_trigger_with_the_plans_deadline() -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from streamforge.orchestration.catalog import read_catalog
    from streamforge.orchestration.plan import make_plan
    from streamforge.orchestration.sensor import QueueOutcomeSensor
    from tests.dags.helpers import DAG_1M, SHIPPED_CATALOG

    now = datetime.now(UTC)
    spec = read_catalog(SHIPPED_CATALOG, environ={}).get(DAG_1M)
    params = {"source": "auto", "batch_size": 1000, "partitions": 1, "timeout_minutes": 30}
    plan = make_plan(
        spec,
        run_id="r",
        attempt=1,
        logical_date=datetime(2024, 8, 1, tzinfo=UTC),
        run_after=now,
        params=params,
        now=now,
    ).xcom()
    sensor = QueueOutcomeSensor(task_id="await_outcome", plan=plan, kafka_config_id=CONN_ID, deferrable=True)

    class TI:
        task_id, dag_id, run_id = "await_outcome", DAG_1M, "r"
        pushed: dict[str, Any] = {}

        def get_task_states(self, **_: Any) -> dict[str, Any]:
            return {}

        def xcom_pull(self, **_: Any) -> Any:
            return None

        def xcom_push(self, key: str, value: Any) -> None:
            self.pushed[key] = value

    with pytest.raises(TaskDeferred) as info:
        sensor.execute({"ti": TI()})
    classpath, kwargs = info.value.trigger.serialize()
    assert classpath == "streamforge.orchestration.trigger.QueueOutcomeTrigger"
    assert kwargs["queue_id"] == plan["queue_id"] and kwargs["since_ms"] == int(
        datetime.fromisoformat(plan["created_at"]).timestamp() * 1000
    )
    assert kwargs["loader_producer"] == plan["producers"]["loader"]
    assert timedelta(minutes=44) < info.value.timeout < timedelta(minutes=46)  # 30 min + 15 min backstop
    assert info.value.method_name == "execute_complete"
    with pytest.raises(Exception, match="sink wrote 1 records but the loader produced 2"):
        sensor.execute_complete(
            {"ti": TI()},
            {
                "queue_id": "q",
                "success": False,
                "reason": "mismatch",
                "message": "sink wrote 1 records but the loader produced 2",
            },
        )
