"""A sink without COLLECTION_NAME (a window longer than a day) stores each record in its day's collection.

Real Kafka, the ArangoDB-compatible test server and the three real BTCUSDT 1m days of shared/data.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from streamforge.contracts.records import Candle, candles_from_csv
from tests.workers.test_sink import BINANCE, dump, expected_docs, make_sink, produce, sink_env

__all__ = ["make_sink"]  # the sink fixture of test_sink.py

pytestmark = pytest.mark.kafka

DAYS = ("2020-01-01", "2020-01-02", "2020-01-03")


def real_day(day: str) -> list[Candle]:
    with zipfile.ZipFile(BINANCE / "spot" / "klines" / "1m" / f"BTCUSDT-1m-{day}.zip") as archive:
        (member,) = archive.namelist()
        text = io.TextIOWrapper(archive.open(member), encoding="utf-8").read()
    return list(candles_from_csv("BTCUSDT", "1m", text.splitlines()))


def test_three_days_land_in_their_own_collections(kafka_broker, kafka_topic, arango_endpoint, arango_db, make_sink):
    topic = kafka_topic(partitions=2)
    days = {day: real_day(day) for day in DAYS}
    produce(kafka_broker, topic, [c for day in DAYS for c in days[day]], partitions=2)
    env = sink_env(
        kafka_broker,
        arango_endpoint,
        arango_db.name,
        topic,
        "",
        TIME_RANGE="2020-01-01/2020-01-04",
        ARANGO_BATCH_SIZE="700",
    )
    sink = make_sink(topic, "", env=env)
    assert sink.run() == 0, sink.log_tail()
    assert sink.terminal().records_written == 3 * 1440
    for day in DAYS:
        collection = f"btcusdt_api_candles_1m_{day.replace('-', '_')}"
        assert dump(arango_db, collection) == expected_docs(days[day], collection)


def test_a_record_outside_the_window_fails_and_nothing_of_its_batch_is_committed(
    kafka_broker: Any, kafka_topic: Any, arango_endpoint: Any, arango_db: Any, make_sink: Any
) -> None:
    topic = kafka_topic()
    produce(kafka_broker, topic, real_day("2020-01-02")[:10])
    # Two days that end before 2020-01-02: its records belong to no collection of this window.
    env = sink_env(kafka_broker, arango_endpoint, arango_db.name, topic, "", TIME_RANGE="2019-12-31/2020-01-02")
    sink = make_sink(topic, "", env=env)
    assert sink.run() == 1, sink.log_tail()
    message = sink.terminal().error_message or ""
    assert "record BTCUSDT_1m_1577923200000 (open_time 1577923200000) lies outside TIME_RANGE" in message
    assert not arango_db.has_collection("btcusdt_api_candles_1m_2020_01_02")
