"""Records (ARCHITECTURE §4) parsed from real Binance data in ../shared/data."""

import io
import itertools
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamforge.contracts.records import (
    EOS_HEADER,
    Candle,
    EndOfStream,
    RecordError,
    Trade,
    candle_from_rest,
    candles_from_csv,
    is_eos,
    to_ms,
    trade_from_rest,
    trades_from_csv,
)
from streamforge.stack.paths import SHARED_DATA

BINANCE = SHARED_DATA / "binance"


def zip_lines(path: Path) -> Iterator[str]:
    with zipfile.ZipFile(path) as archive:
        with archive.open(archive.namelist()[0]) as member:
            yield from io.TextIOWrapper(member, encoding="utf-8")


def test_spot_1m_day_without_header() -> None:
    candles = list(candles_from_csv("BTCUSDT", "1m", zip_lines(BINANCE / "spot/klines/1m/BTCUSDT-1m-2020-01-01.zip")))
    assert len(candles) == 1440
    first = candles[0]
    assert first.key == "BTCUSDT_1m_1577836800000"
    assert (first.open, first.high, first.low, first.close) == (7195.24, 7196.25, 7183.14, 7186.68)
    assert first.number_of_trades == 493
    assert [c.open_time for c in candles] == list(range(1577836800000, 1577836800000 + 86_400_000, 60_000))
    doc = first.to_document()
    assert doc["_key"] == first.key and doc["close_time"] == 1577836859999


def test_monthly_1h_csv() -> None:
    lines = (BINANCE / "spot/klines/1h/BTCUSDT-1h-2024-08.csv").read_text().splitlines()
    candles = list(candles_from_csv("BTCUSDT", "1h", lines))
    assert len(candles) == 744


def test_futures_aggtrades_with_header() -> None:
    trades = trades_from_csv(
        "BTCUSD_PERP", zip_lines(BINANCE / "futures-cm/aggTrades/BTCUSD_PERP-aggTrades-2026-05-08.zip")
    )
    first = next(trades)
    assert first.trade_id == 480537903 and first.is_best_match is None
    assert first.key == "BTCUSD_PERP_480537903"
    count = 1 + sum(1 for _ in trades)
    assert count == 105_280


def test_rest_klines_and_aggtrades() -> None:
    rows = json.loads((BINANCE / "rest-responses/api_v3_klines.BTCUSDT.1m.json").read_text())
    candles = [candle_from_rest("BTCUSDT", "1m", row) for row in rows]
    assert [b.open_time - a.open_time for a, b in itertools.pairwise(candles)] == [60_000] * 9
    trades = [
        trade_from_rest("BTCUSDT", obj)
        for obj in json.loads((BINANCE / "rest-responses/api_v3_aggTrades.BTCUSDT.json").read_text())
    ]
    assert [t.trade_id for t in trades] == list(range(966492862, 966492872))
    assert all(isinstance(t.is_best_match, bool) for t in trades)


SPOT_ROW = (
    "1577836800000,7195.24000000,7196.25000000,7183.14000000,7186.68000000,51.64281200,"
    "1577836859999,371233.51835535,493,19.59823000,140888.41428273,0"
)


def test_microseconds_are_normalised_to_milliseconds() -> None:
    row_us = "1577836800000000,7195.24,7196.25,7183.14,7186.68,51.6,1577836859999999,371233.5,493,19.5,140888.4,0"
    (candle,) = candles_from_csv("BTCUSDT", "1m", [row_us])
    (same,) = candles_from_csv("BTCUSDT", "1m", [SPOT_ROW])
    assert candle.open_time == same.open_time == 1577836800000
    assert candle.close_time == 1577836859999
    assert to_ms(1778198400000000) == 1778198400000


@pytest.mark.parametrize(
    ("row", "message"),
    [
        # µs open time with an ms close time: a mixed-up file, not a candle
        ("1577836800000000,1,1,1,1,1,1577836859999,1,1,1,1,0", "mix microseconds and milliseconds"),
        # seconds instead of ms
        ("1577836800,1,1,1,1,1,1577836859,1,1,1,1,0", "not an epoch timestamp in milliseconds or microseconds"),
        ("1577836800000,1,1,1,1,1,1577836919999,1,1,1,1,0", "does not end the 1m candle"),
        ("1577836800000,abc,1,1,1,1,1577836859999,1,1,1,1,0", "open: Input should be a valid number"),
        ("1577836800000,2,1,1,1,1,1577836859999,1,1,1,1,0", "high/low do not bound open/close"),
        ("1577836800000,1,1,1", "expected 12 columns, got 4"),
    ],
)
def test_bad_kline_rows_are_refused_with_the_reason(row: str, message: str) -> None:
    with pytest.raises(RecordError, match=message) as info:
        list(candles_from_csv("BTCUSDT", "1m", [row]))
    assert "kline CSV line 1" in str(info.value)


def test_bad_interval_symbol_and_trade_rows() -> None:
    with pytest.raises(RecordError, match="unknown interval '7m'"):
        list(candles_from_csv("BTCUSDT", "7m", [SPOT_ROW]))
    with pytest.raises(ValueError, match="illegal symbol"):
        list(candles_from_csv("btc-usdt", "1m", [SPOT_ROW]))
    with pytest.raises(RecordError, match="aggTrades CSV line 1: 'yes' is not a boolean"):
        list(trades_from_csv("BTCUSDT", ["1,2,3,4,5,1577836800000,yes,true"]))
    with pytest.raises(RecordError, match="last_trade_id < first_trade_id"):
        list(trades_from_csv("BTCUSDT", ["1,2,3,9,5,1577836800000,true,true"]))
    with pytest.raises(RecordError, match="missing field 'T'"):
        trade_from_rest("BTCUSDT", {"a": 1, "p": "1", "q": "1", "f": 1, "l": 1, "m": True})


def test_data_topic_records_and_end_of_stream() -> None:
    (candle,) = candles_from_csv("BTCUSDT", "1m", [SPOT_ROW])
    assert Candle.from_bytes(candle.to_bytes()) == candle
    with pytest.raises(RecordError, match="invalid candle record: open_time"):
        Candle.from_bytes(candle.to_bytes().replace(b"1577836800000", b"1577836800", 1))
    with pytest.raises(RecordError, match="invalid trade record"):
        Trade.from_bytes(b"{not json")
    marker = EndOfStream(records=1440)
    assert json.loads(marker.to_bytes()) == {"eos": True, "records": 1440}
    assert is_eos(EndOfStream.headers()) and EndOfStream.headers() == [(EOS_HEADER, b"1")]
    assert not is_eos(None) and not is_eos([("other", b"1")])
