"""`verify` (WINDOW_SUMMARY on the ArangoDB test server) and the topic admin / stop command."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from streamforge.orchestration.catalog import read_catalog
from streamforge.orchestration.plan import RunPlan, make_plan
from streamforge.orchestration.verify import Summary, check, summarize
from tests.dags.helpers import SHIPPED_CATALOG

DAY_MS = 1722470400000  # 2024-08-01
PARAMS = {"source": "auto", "batch_size": 1000, "partitions": 2, "timeout_minutes": 5}


def plan_for(data_type: str, run_id: str = "r1") -> RunPlan:
    spec = read_catalog(SHIPPED_CATALOG, environ={}).get(f"streamforge__btcusdt__{data_type}")
    return make_plan(
        spec,
        run_id=run_id,
        attempt=1,
        logical_date=datetime(2024, 8, 1, tzinfo=UTC),
        run_after=datetime(2024, 8, 2, tzinfo=UTC),
        params=PARAMS,
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("summary", "loader", "problems"),
    [
        (Summary(count=24, first=DAY_MS, last=DAY_MS + 23 * 3_600_000), 24, []),
        (
            Summary(count=23, first=DAY_MS, last=DAY_MS + 23 * 3_600_000),
            23,
            ["23 candles, expected 24", "the loader produced 23 candles, the window has 24"],
        ),
        (
            Summary(count=24, first=DAY_MS + 3_600_000, last=DAY_MS + 24 * 3_600_000),
            24,
            [
                f"open_time range {DAY_MS + 3_600_000}..{DAY_MS + 24 * 3_600_000}, "
                f"expected {DAY_MS}..{DAY_MS + 23 * 3_600_000}"
            ],
        ),
        (
            Summary(count=0, first=None, last=None, exists=False),
            24,
            ["collection btcusdt_api_candles_1h_2024_08_01 does not exist", "0 candles, expected 24"],
        ),
    ],
)
def test_candle_checks(summary: Summary, loader: int, problems: list[str]) -> None:
    report = check(plan_for("api_candles_1h"), summary, loader)
    assert report.problems == problems
    assert report.line().startswith(
        "verify btcusdt_api_candles_1h_2024_08_01 2024-08-01T00:00:00Z/2024-08-02T00:00:00Z"
    )


def test_trade_checks() -> None:
    plan = plan_for("api_trades")
    assert check(plan, Summary(count=10, first=100, last=109), 10).ok
    gap = check(plan, Summary(count=10, first=100, last=110), 10)
    assert gap.problems == ["trade ids 100..110 span 11 ids for 10 trades: 1 missing"]
    assert check(plan, Summary(count=9, first=100, last=108), 10).problems == ["9 trades, the loader produced 10"]


def test_summary_from_the_arango_test_server(arango_db: Any) -> None:
    plan = plan_for("api_candles_1h")
    collection = arango_db.create_collection(plan.collection)
    hours = range(DAY_MS - 3_600_000, DAY_MS + 25 * 3_600_000, 3_600_000)  # one hour on each side outside
    collection.insert_many([{"_key": f"BTCUSDT_1h_{t}", "open_time": t} for t in hours])
    summary = summarize(arango_db, plan)
    assert (summary.count, summary.first, summary.last) == (24, DAY_MS, DAY_MS + 23 * 3_600_000)
    assert check(plan, summary, 24).ok
    missing = summarize(arango_db, plan.model_copy(update={"collection": "nope"}))
    assert not missing.exists


@pytest.fixture
def kafka_conn(kafka_broker, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(
        "AIRFLOW_CONN_SF_KAFKA_ADMIN_TEST",
        json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": kafka_broker.bootstrap}}),
    )
    return "sf_kafka_admin_test"


@pytest.mark.kafka
def test_topic_lifecycle_is_idempotent(kafka_broker: Any, kafka_conn: str) -> None:
    from streamforge.orchestration.kafka_ops import TopicError, create_data_topic, delete_data_topic

    plan = plan_for("api_candles_1m", run_id=f"topics-{uuid.uuid4().hex}")
    assert plan.replication_factor is None  # the catalog leaves it to the broker's default (1 here)
    create_data_topic(kafka_conn, plan)
    create_data_topic(kafka_conn, plan)  # a retry
    topics = kafka_broker.admin().list_topics(timeout=10).topics
    assert len(topics[plan.data_topic].partitions) == 2
    assert all(len(p.replicas) == 1 for p in topics[plan.data_topic].partitions.values())
    with pytest.raises(TopicError, match="exists with 2 partitions, not 3"):
        create_data_topic(kafka_conn, plan.model_copy(update={"partitions": 3}))
    assert delete_data_topic(kafka_conn, plan) is True
    assert delete_data_topic(kafka_conn, plan) is False  # teardown of a retried run


@pytest.mark.kafka
def test_stop_command(kafka_broker: Any, kafka_conn: str) -> None:
    from confluent_kafka import Consumer, TopicPartition

    from streamforge.contracts.messages import parse_command
    from streamforge.orchestration.kafka_ops import send_stop_command

    plan = plan_for("api_candles_1m", run_id=f"stop-{uuid.uuid4().hex}")
    consumer = Consumer(kafka_broker.client_config(group_id=f"t-{uuid.uuid4().hex}"))
    end = consumer.get_watermark_offsets(TopicPartition("queue-control", 0), timeout=10)[1]
    send_stop_command(kafka_conn, plan, reason="sink reported an error")
    consumer.assign([TopicPartition("queue-control", 0, end)])
    message = consumer.poll(10)
    consumer.close()
    assert message is not None and message.key() == plan.queue_id.encode()
    command = parse_command(message.value())
    assert (command.command.value, command.target, command.reason) == ("stop", None, "sink reported an error")
    assert command.applies_to(plan.queue_id, "loader")
