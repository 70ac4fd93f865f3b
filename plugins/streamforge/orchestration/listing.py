"""Listing boundaries: where a symbol's history starts and whether it still trades.

Learned from the exchange once per symbol x data type — the first candle (`klines?startTime=0&
limit=1`) or the first aggregate trade (`aggTrades?fromId=0&limit=1`), and exchangeInfo's
`status` — and cached in the data's ArangoDB database (`contracts.gaps.LISTING_COLLECTION`,
key `listing_key`). The first record never changes, so it is cached for good; the status is
asked again when the cached one is older than `STATUS_MAX_AGE_SECONDS`.

`plan` uses it before anything is created: a window entirely before the listing (or after the
symbol stopped trading) succeeds with 0 records and a stated reason, creating no topic and
starting no worker; a window crossing the listing is loaded from the first record.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

from streamforge.contracts.gaps import LISTING_COLLECTION, ListingInfo, iso, listing_key
from streamforge.contracts.names import DataType, Kind

log = logging.getLogger(__name__)

STATUS_MAX_AGE_SECONDS = 24 * 3600
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class ListingUnknown(Exception):
    """The exchange could not be asked (the run goes on without a boundary)."""


def learn(api_url: str, symbol: str, data_type: str) -> ListingInfo:
    """Ask Binance REST for the first record and the trading status."""
    dt = DataType.parse(data_type)
    try:
        with httpx.Client(base_url=api_url.rstrip("/"), timeout=TIMEOUT) as http:
            if dt.kind is Kind.CANDLES:
                assert dt.interval is not None
                rows = _get(http, "/api/v3/klines", symbol=symbol, interval=dt.interval.code, startTime=0, limit=1)
                first_time, first_id = (int(rows[0][0]), None) if rows else (None, None)
            else:
                rows = _get(http, "/api/v3/aggTrades", symbol=symbol, fromId=0, limit=1)
                first_time, first_id = (int(rows[0]["T"]), int(rows[0]["a"])) if rows else (None, None)
            info = _get(http, "/api/v3/exchangeInfo", symbol=symbol)
            status = str(info["symbols"][0].get("status", "TRADING"))
            last_time = None
            if status != "TRADING":  # the most recent record is the last one it will ever have
                if dt.kind is Kind.CANDLES:
                    assert dt.interval is not None
                    rows = _get(http, "/api/v3/klines", symbol=symbol, interval=dt.interval.code, limit=1)
                    last_time = int(rows[-1][0]) if rows else None
                else:
                    rows = _get(http, "/api/v3/aggTrades", symbol=symbol, limit=1)
                    last_time = int(rows[-1]["T"]) if rows else None
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise ListingUnknown(f"cannot learn the listing of {symbol} {data_type} from {api_url}: {exc}") from exc
    return ListingInfo(
        symbol=symbol,
        data_type=data_type,
        first_open_time_ms=first_time,
        first_trade_id=first_id,
        status=status,
        last_open_time_ms=last_time,
        learned_at=time.time(),
    )


def _get(http: httpx.Client, path: str, **params: Any) -> Any:
    resp = http.get(path, params=params)
    resp.raise_for_status()
    return resp.json()


def cached(db: Any, api_url: str, symbol: str, data_type: str, now: float | None = None) -> ListingInfo:
    """The cached ListingInfo, refreshed from the exchange when missing or its status is stale."""
    now = time.time() if now is None else now
    if not db.has_collection(LISTING_COLLECTION):
        try:
            db.create_collection(LISTING_COLLECTION)
        except Exception:  # a concurrent run created it first
            if not db.has_collection(LISTING_COLLECTION):
                raise
    collection = db.collection(LISTING_COLLECTION)
    doc = collection.get(listing_key(symbol, data_type))
    if doc is not None:
        info = ListingInfo.model_validate({k: v for k, v in doc.items() if not k.startswith("_")})
        if info.first_open_time_ms is not None and now - info.learned_at < STATUS_MAX_AGE_SECONDS:
            return info
    info = learn(api_url, symbol, data_type)
    collection.insert(info.to_document(), overwrite_mode="replace")
    log.info("listing of %s %s learned: %s", symbol, data_type, info.model_dump(mode="json"))
    return info


@dataclass(frozen=True)
class Boundary:
    """What the listing means for a window: skip it (reason) or load from `start_ms`."""

    start_ms: int
    skip_reason: str | None = None
    note: str | None = None


def boundary(info: ListingInfo, start_ms: int, end_ms: int) -> Boundary:
    """Apply the listing to the window [start_ms, end_ms)."""
    first = info.first_open_time_ms
    what = "candle" if DataType.parse(info.data_type).kind is Kind.CANDLES else "trade"
    if first is None:
        return Boundary(start_ms, skip_reason=f"the exchange has no {info.data_type} data for {info.symbol} at all")
    if end_ms <= first:
        return Boundary(start_ms, skip_reason=f"before listing, first {what} {iso(first)}")
    last = info.last_open_time_ms
    if info.status != "TRADING" and last is not None and start_ms > last:
        reason = f"after {info.symbol} stopped trading (status {info.status}), last {what} {iso(last)}"
        return Boundary(start_ms, skip_reason=reason)
    if start_ms < first:
        note = f"window starts before listing: loaded from the first {what} {iso(first)}"
        # Candles: the window's grid starts at the first candle, so verify expects no earlier
        # ones. Trades have no grid and nothing exists before the first one: the window keeps its
        # start, so the listing day stays a whole archive day (a first trade at 00:00:00.020
        # would otherwise turn it into a REST load).
        return Boundary(first if what == "candle" else start_ms, note=note)
    return Boundary(start_ms)
