"""Listing boundaries (orchestration/listing.py): what a symbol's first record and trading status
mean for a window, learned from the Binance replay server (real data, `listing` fault) and
cached in ArangoDB (the test server)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from streamforge.contracts.gaps import LISTING_COLLECTION, ListingInfo, listing_key
from streamforge.orchestration import listing
from tests.workers.test_loader_units import DAY, JAN1, ms

FIRST_TRADE_MS = ms("2026-05-08T00:00:00.020")  # BTCUSD_PERP, first aggregate trade of the replayed day


def _info(data_type: str = "api_candles_1m", **fields: Any) -> ListingInfo:
    return ListingInfo(symbol="BTCUSDT", data_type=data_type, learned_at=0.0, **({"first_open_time_ms": JAN1} | fields))


def test_window_before_the_listing_is_skipped_with_the_first_candle() -> None:
    bound = listing.boundary(_info(first_open_time_ms=JAN1 + DAY), JAN1, JAN1 + DAY)
    assert bound.skip_reason == "before listing, first candle 2020-01-02T00:00:00Z"


def test_candle_window_crossing_the_listing_starts_at_the_first_candle() -> None:
    first = JAN1 + 6 * 3_600_000
    bound = listing.boundary(_info(first_open_time_ms=first), JAN1, JAN1 + DAY)
    assert (bound.start_ms, bound.skip_reason) == (first, None)
    assert bound.note == "window starts before listing: loaded from the first candle 2020-01-01T06:00:00Z"


def test_trade_window_crossing_the_listing_keeps_its_start() -> None:
    """Nothing exists before the first trade, so the listing day stays a whole (archive) day."""
    day = ms("2026-05-08T00:00:00")
    info = _info("api_trades", first_open_time_ms=FIRST_TRADE_MS, first_trade_id=480_537_903)
    bound = listing.boundary(info, day, day + DAY)
    assert (bound.start_ms, bound.skip_reason) == (day, None)
    assert bound.note == "window starts before listing: loaded from the first trade 2026-05-08T00:00:00Z"


def test_window_after_the_symbol_stopped_trading_is_skipped() -> None:
    info = _info(status="BREAK", last_open_time_ms=JAN1 + DAY - 60_000)
    bound = listing.boundary(info, JAN1 + DAY, JAN1 + 2 * DAY)
    assert bound.skip_reason == "after BTCUSDT stopped trading (status BREAK), last candle 2020-01-01T23:59:00Z"
    # the last day it traded is still loaded, and a TRADING symbol is never cut off
    assert listing.boundary(info, JAN1, JAN1 + DAY).skip_reason is None
    assert listing.boundary(_info(), JAN1 + 9 * DAY, JAN1 + 10 * DAY).skip_reason is None


def test_symbol_without_any_data() -> None:
    bound = listing.boundary(_info(first_open_time_ms=None), JAN1, JAN1 + DAY)
    assert bound.skip_reason == "the exchange has no api_candles_1m data for BTCUSDT at all"


@pytest.mark.parametrize(
    ("data_type", "symbol", "first", "first_id"),
    [("api_candles_1m", "BTCUSDT", JAN1, None), ("api_trades", "BTCUSD_PERP", FIRST_TRADE_MS, 480_537_903)],
)
def test_learned_from_the_exchange(
    binance_replay_clean: Any, data_type: str, symbol: str, first: int, first_id: int | None
) -> None:
    info = listing.learn(binance_replay_clean.api_url, symbol, data_type)
    assert (info.first_open_time_ms, info.first_trade_id, info.status) == (first, first_id, "TRADING")
    assert info.last_open_time_ms is None


def test_a_stopped_symbol_is_learned_with_its_status_and_last_candle(binance_replay_clean: Any) -> None:
    binance_replay_clean.add_fault("listing", symbol="BTCUSDT", listed_at_ms=JAN1, delisted_at_ms=JAN1 + DAY)
    info = listing.learn(binance_replay_clean.api_url, "BTCUSDT", "api_candles_1m")
    assert (info.first_open_time_ms, info.status, info.last_open_time_ms) == (JAN1, "BREAK", JAN1 + DAY - 60_000)


def test_cached_once_status_asked_again_when_stale(binance_replay_clean: Any, arango_db: Any) -> None:
    api = binance_replay_clean.api_url
    first = listing.cached(arango_db, api, "BTCUSDT", "api_candles_1m")
    assert first.status == "TRADING"
    doc = arango_db.collection(LISTING_COLLECTION).get(listing_key("BTCUSDT", "api_candles_1m"))
    assert doc["first_open_time_ms"] == JAN1
    # the symbol stops trading: a fresh cache entry is still used, a stale one is learned again
    binance_replay_clean.add_fault("listing", symbol="BTCUSDT", listed_at_ms=JAN1, delisted_at_ms=JAN1 + DAY)
    assert listing.cached(arango_db, api, "BTCUSDT", "api_candles_1m") == first
    later = time.time() + listing.STATUS_MAX_AGE_SECONDS + 1
    stopped = listing.cached(arango_db, api, "BTCUSDT", "api_candles_1m", now=later)
    assert (stopped.status, stopped.last_open_time_ms) == ("BREAK", JAN1 + DAY - 60_000)
    assert arango_db.collection(LISTING_COLLECTION).get(listing_key("BTCUSDT", "api_candles_1m"))["status"] == "BREAK"


def test_unreachable_exchange_is_listing_unknown() -> None:
    with pytest.raises(listing.ListingUnknown, match="cannot learn the listing of BTCUSDT api_candles_1m"):
        listing.learn("http://127.0.0.1:9", "BTCUSDT", "api_candles_1m")
