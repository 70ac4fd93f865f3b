"""Day routing: a window longer than a day lands in each day's own collection (names.py, the sink's router)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from streamforge.contracts.config import SinkSettings
from streamforge.contracts.names import (
    Layout,
    WindowPart,
    collection_name,
    routes_per_day,
    window_collections,
)
from streamforge.contracts.record_codec import RecordCodec
from streamforge.contracts.records import Candle
from streamforge_workers.sink.routing import CollectionRouter, OutsideWindow

AUG1 = datetime(2024, 8, 1, tzinfo=UTC)
DAY = timedelta(days=1)
SINK_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
    "QUEUE_ID": "wf-btcusdt-api_candles_1h-20240801-abcdef",
    "SYMBOL": "BTCUSDT",
    "TYPE": "api_candles_1h",
    "KAFKA_TOPIC": "wf-btcusdt-api_candles_1h-20240801-abcdef-data",
    "TELEMETRY_PRODUCER_ID": "arango-candles__abcdef",
    "QUEUE_CREATED_AT": "2024-09-02T00:00:00Z",
    "ARANGO_URL": "http://a:8529",
}


def sink_settings(**env: str) -> SinkSettings:
    return SinkSettings.model_validate({k.lower(): v for k, v in (SINK_ENV | env).items()})


def test_only_daily_windows_longer_than_a_day_route_per_day() -> None:
    assert routes_per_day(AUG1, AUG1 + 31 * DAY, Layout.DAILY)
    assert not routes_per_day(AUG1, AUG1 + DAY, Layout.DAILY)
    assert not routes_per_day(AUG1 + timedelta(hours=6), AUG1 + timedelta(hours=30), Layout.DAILY)
    assert not routes_per_day(AUG1, AUG1 + 31 * DAY, Layout.SINGLE)


def test_a_month_lists_every_day_collection_with_its_part() -> None:
    parts = window_collections("BTCUSDT", "api_candles_1h", AUG1, AUG1 + 31 * DAY)
    assert len(parts) == 31
    assert parts[0] == WindowPart("btcusdt_api_candles_1h_2024_08_01", AUG1, AUG1 + DAY)
    assert parts[-1].collection == "btcusdt_api_candles_1h_2024_08_31"
    assert all(p.collection == collection_name("BTCUSDT", "api_candles_1h", p.start) for p in parts)
    # A window starting mid-day (listing boundary) keeps whole later days, its first part starts late.
    late = AUG1 + timedelta(hours=13)
    first, second = window_collections("BTCUSDT", "api_candles_1h", late, AUG1 + 2 * DAY)
    assert (first.start, first.end, second.start) == (late, AUG1 + DAY, AUG1 + DAY)
    assert window_collections("BTCUSDT", "api_candles_1h", AUG1, AUG1 + 31 * DAY, Layout.SINGLE) == [
        WindowPart("btcusdt_api_candles_1h", AUG1, AUG1 + 31 * DAY)
    ]


def test_sink_settings_need_a_collection_or_a_window() -> None:
    assert sink_settings(COLLECTION_NAME="c").collection_name == "c"
    routed = sink_settings(COLLECTION_NAME="", TIME_RANGE="2024-08-01/2024-09-01")
    assert routed.collection_name is None
    with pytest.raises(ValueError, match="COLLECTION_NAME or TIME_RANGE is required"):
        sink_settings(COLLECTION_NAME="")
    with pytest.raises(ValueError, match="COLLECTION_NAME is required with COLLECTION_LAYOUT=single"):
        sink_settings(COLLECTION_LAYOUT="single", TIME_RANGE="2024-08-01/2024-09-01")


def _doc(open_time: datetime) -> object:
    ms = int(open_time.timestamp() * 1000)
    candle = Candle(
        symbol="BTCUSDT",
        interval="1h",
        open_time=ms,
        close_time=ms + 3_599_999,
        open=1,
        high=2,
        low=1,
        close=2,
        volume=1,
        quote_asset_volume=1,
        number_of_trades=1,
        taker_buy_base_asset_volume=0,
        taker_buy_quote_asset_volume=0,
    )
    return RecordCodec("candles", "BTCUSDT", "1h", "api_candles_1h").decode(candle.to_bytes())


def test_router_splits_a_batch_by_day_in_order() -> None:
    router = CollectionRouter(sink_settings(TIME_RANGE="2024-08-01/2024-09-01"))
    times = [AUG1 + timedelta(hours=h) for h in (22, 23, 24, 25, 24 * 30 + 23)]
    parts = router.split([_doc(t) for t in times])
    assert {name: [d.open_time for d in docs] for name, docs in parts.items()} == {
        "btcusdt_api_candles_1h_2024_08_01": [int(t.timestamp() * 1000) for t in times[:2]],
        "btcusdt_api_candles_1h_2024_08_02": [int(t.timestamp() * 1000) for t in times[2:4]],
        "btcusdt_api_candles_1h_2024_08_31": [int(times[4].timestamp() * 1000)],
    }
    with pytest.raises(OutsideWindow, match=r"BTCUSDT_1h_1725148800000 .* outside TIME_RANGE 2024-08-01T00:00:00Z"):
        router.split([_doc(AUG1 + 31 * DAY)])
    fixed = CollectionRouter(sink_settings(COLLECTION_NAME="c", TIME_RANGE="2024-08-01/2024-09-01"))
    assert list(fixed.split([_doc(AUG1), _doc(AUG1 + 3 * DAY)])) == ["c"]
