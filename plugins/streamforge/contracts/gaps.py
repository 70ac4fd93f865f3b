"""Holes in real history, as data (ARCHITECTURE §4).

Binance history is not a clean grid: maintenance windows leave minutes without candles in BOTH
the daily archive and REST, archives sometimes lack rows REST still has, and a symbol has no
data before it was listed. The loader classifies every missing range and never guesses:

* **exchange gap** — the exchange itself has no records there (both sources agree, or one REST
  response jumps over the range). Loaded around and recorded as a `Gap`.
* **repaired** — the archive lacked records REST has; they were filled from REST and the range
  is recorded as a `Repair` (the data is complete, the note says where it came from).
* **fault** — anything else (truncated response, parser or transport error): the run fails.

A `Gap` travels in the loader's terminal event (`extra["gaps"]`), the verify report, the DagRun
note and the gap ledger: the ArangoDB collection `GAP_COLLECTION` in the data's database, one
document per gap keyed by `gap_key`, so re-running a day upserts instead of duplicating.

Listing boundaries (`ListingInfo`) are learned from the exchange once per symbol x type and
cached in the same database, collection `LISTING_COLLECTION`, key `listing_key(...)`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streamforge.contracts.names import DataType, Kind, validate_symbol

GAP_COLLECTION = "streamforge_gaps"
LISTING_COLLECTION = "streamforge_listings"

Unit = Literal["open_time_ms", "trade_id"]


class GapPolicy(StrEnum):
    """What a run does with an exchange gap: record it and succeed, or fail naming it."""

    RECORD = "record"
    FAIL = "fail"


class ConfirmedBy(StrEnum):
    """How a gap was shown to be the exchange's own, not a loading fault."""

    REST_RESPONSE = "rest_response"  # one REST response jumped over the range
    REST_RANGE = "rest_range"  # archive lacked it; REST asked for exactly that range has none
    REST_FROM_ID = "rest_from_id"  # aggTrades id break; `aggTrades?fromId=` skips the same ids
    BOTH_SOURCES_EMPTY = "both_sources_empty"  # a whole window without data in archive and REST


def unit_for(data_type: str) -> Unit:
    return "open_time_ms" if DataType.parse(data_type).kind is Kind.CANDLES else "trade_id"


class _Range(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    data_type: str
    unit: Unit
    first: int = Field(ge=0, description="first missing open time (ms) or trade id, inclusive")
    last: int = Field(ge=0, description="last missing open time (ms) or trade id, inclusive")
    count: int = Field(ge=1, description="missing candles or aggregate trades")

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        return validate_symbol(value)

    @model_validator(mode="after")
    def _consistent(self) -> _Range:
        DataType.parse(self.data_type)
        if self.unit != unit_for(self.data_type):
            raise ValueError(f"unit {self.unit} does not fit {self.data_type}")
        if self.last < self.first:
            raise ValueError("last < first")
        return self

    def describe(self) -> str:
        """`11:35-17:29 UTC (355 candles)` style text for notes and errors."""
        if self.unit == "trade_id":
            return f"trade ids {self.first}-{self.last} ({self.count} aggTrades)"
        first, last = _utc(self.first), _utc(self.last)
        fmt = "%H:%M" if first.date() == last.date() else "%Y-%m-%d %H:%M"
        return f"{first:%Y-%m-%d} {first:%H:%M}-{last:{fmt}} UTC ({self.count} candles)"


class Gap(_Range):
    """A range the exchange has no records for (inclusive bounds)."""

    confirmed_by: ConfirmedBy
    queue_id: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    recorded_at: float | None = None

    def to_document(self) -> dict[str, Any]:
        doc = self.model_dump(mode="json")
        doc["_key"] = gap_key(self)
        return doc


class Repair(_Range):
    """A range the archive lacked and REST filled: complete data, noted for the record."""

    source: Literal["rest"] = "rest"


def gap_key(gap: _Range) -> str:
    """Deterministic ledger `_key`: one document per gap however often a day is re-run."""
    return f"{gap.symbol}_{gap.data_type}_{gap.first}"


class ListingInfo(BaseModel):
    """Where a symbol's history starts (and whether it still trades), learned from the exchange.

    `first` is the first candle's open time (ms) for candles, the first aggregate trade's
    `timestamp` (ms) for trades; `first_trade_id` is set for trades.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    data_type: str
    first_open_time_ms: int | None = None  # None: the exchange returned no data at all
    first_trade_id: int | None = None
    status: str = "TRADING"  # exchangeInfo status; anything but TRADING means it stopped
    last_open_time_ms: int | None = None  # last candle / trade time, once it stopped trading
    learned_at: float

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        return validate_symbol(value)

    def to_document(self) -> dict[str, Any]:
        doc = self.model_dump(mode="json")
        doc["_key"] = listing_key(self.symbol, self.data_type)
        return doc


def listing_key(symbol: str, data_type: str) -> str:
    return f"{validate_symbol(symbol)}_{DataType.parse(data_type).name}"


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso(ms: int) -> str:
    """`2019-07-05T00:00:00Z` for reasons and notes."""
    return _utc(ms).strftime("%Y-%m-%dT%H:%M:%SZ")
