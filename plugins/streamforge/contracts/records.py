"""Records on the data topic and the documents stored from them (ARCHITECTURE §4).

Parsers turn Binance's REST arrays and data.binance.vision CSV rows into typed records.
Timestamps are epoch milliseconds everywhere; archive files from 2025 on use microseconds,
which are normalised here and nowhere else. A row that does not fit raises `RecordError`
naming the row and the reason: bad input is refused, never guessed at.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streamforge.contracts.names import INTERVALS, Interval, validate_symbol

EOS_HEADER = "streamforge-eos"

# Plausible epoch-ms bounds (2010..2100): a value outside is a unit mistake, not a date.
_MS_MIN, _MS_MAX = 1_262_304_000_000, 4_102_444_800_000
_US_THRESHOLD = 10**14  # 13-digit ms vs 16-digit µs


class RecordError(ValueError):
    """A source row or data-topic record that is not a valid record."""


def to_ms(value: int | str, what: str = "timestamp") -> int:
    """Epoch ms from ms or µs (archives from 2025 on); anything else is an error."""
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{what} {value!r} is not an integer") from exc
    if number >= _US_THRESHOLD:
        number //= 1000  # sub-millisecond digits are dropped: the contract is ms
    if not _MS_MIN <= number < _MS_MAX:
        raise RecordError(
            f"{what} {value!r} is not an epoch timestamp in milliseconds or microseconds "
            "between 2010 and 2100 (seconds given instead?)"
        )
    return number


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    def to_document(self) -> dict[str, Any]:
        doc = self.model_dump()
        doc["_key"] = self.key
        return doc

    @property
    def key(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise RecordError(f"invalid {cls.__name__.lower()} record: {_short(exc)}") from exc


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}" for err in exc.errors())


class Candle(_Record):
    symbol: str
    interval: str
    open_time: int = Field(ge=_MS_MIN, lt=_MS_MAX)
    close_time: int = Field(ge=_MS_MIN, lt=_MS_MAX)
    open: float = Field(ge=0)
    high: float = Field(ge=0)
    low: float = Field(ge=0)
    close: float = Field(ge=0)
    volume: float = Field(ge=0)
    quote_asset_volume: float = Field(ge=0)
    number_of_trades: int = Field(ge=0)
    taker_buy_base_asset_volume: float = Field(ge=0)
    taker_buy_quote_asset_volume: float = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        interval = INTERVALS.get(self.interval)
        if interval is None:
            raise ValueError(f"unknown interval {self.interval!r}")
        if self.close_time != interval.close_time(self.open_time):
            raise ValueError(
                f"close_time {self.close_time} does not end the {self.interval} candle opening at "
                f"{self.open_time} (expected {interval.close_time(self.open_time)}; ms/µs mix-up?)"
            )
        if self.high < max(self.open, self.close, self.low) or self.low > min(self.open, self.close):
            raise ValueError("high/low do not bound open/close")
        return self

    @property
    def key(self) -> str:
        return f"{self.symbol}_{self.interval}_{self.open_time}"


class Trade(_Record):
    """An aggregate trade (aggTrades)."""

    symbol: str
    trade_id: int = Field(ge=0)
    price: float = Field(ge=0)
    quantity: float = Field(ge=0)
    first_trade_id: int = Field(ge=0)
    last_trade_id: int = Field(ge=0)
    timestamp: int = Field(ge=_MS_MIN, lt=_MS_MAX)
    is_buyer_maker: bool
    # COIN-M archives have no best-match column; None means "not reported by the source".
    is_best_match: bool | None = None

    @model_validator(mode="after")
    def _ids_ordered(self) -> Self:
        if self.last_trade_id < self.first_trade_id:
            raise ValueError("last_trade_id < first_trade_id")
        return self

    @property
    def key(self) -> str:
        return f"{self.symbol}_{self.trade_id}"


class EndOfStream(BaseModel):
    """Marker the loader writes to every partition after its last record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eos: Literal[True] = True
    records: int = Field(ge=0)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @staticmethod
    def headers() -> list[tuple[str, bytes]]:
        return [(EOS_HEADER, b"1")]


def is_eos(headers: Sequence[tuple[str, bytes | None]] | None) -> bool:
    return any(k == EOS_HEADER and v == b"1" for k, v in headers or ())


# --- Binance REST -------------------------------------------------------------------------


def _interval(interval: str) -> Interval:
    try:
        return INTERVALS[interval]
    except KeyError:
        raise RecordError(f"unknown interval {interval!r}; known: {', '.join(INTERVALS)}") from None


def _build(model: type[_Record], fields: dict[str, Any], where: str) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise RecordError(f"{where}: {_short(exc)}") from exc


def candle_from_rest(symbol: str, interval: str, row: Sequence[Any], where: str = "kline") -> Candle:
    """A `/api/v3/klines` array (12 elements, numbers as strings) → Candle."""
    if not isinstance(row, list | tuple) or len(row) < 11:
        raise RecordError(f"{where}: expected a 12-element kline array, got {row!r:.120}")
    return _candle(symbol, interval, row, where)


def _is_us(value: Any) -> bool:
    try:
        return int(value) >= _US_THRESHOLD
    except (TypeError, ValueError):
        return False


def _candle(symbol: str, interval: str, row: Sequence[Any], where: str) -> Candle:
    _interval(interval)
    if _is_us(row[0]) != _is_us(row[6]):
        raise RecordError(f"{where}: open_time {row[0]} and close_time {row[6]} mix microseconds and milliseconds")
    return _build(
        Candle,
        {
            "symbol": validate_symbol(symbol),
            "interval": interval,
            "open_time": to_ms(row[0], f"{where} open_time"),
            "open": row[1],
            "high": row[2],
            "low": row[3],
            "close": row[4],
            "volume": row[5],
            "close_time": to_ms(row[6], f"{where} close_time"),
            "quote_asset_volume": row[7],
            "number_of_trades": row[8],
            "taker_buy_base_asset_volume": row[9],
            "taker_buy_quote_asset_volume": row[10],
        },
        where,
    )


def trade_from_rest(symbol: str, obj: dict[str, Any], where: str = "aggTrade") -> Trade:
    """A `/api/v3/aggTrades` object (keys a p q f l T m M) → Trade."""
    try:
        fields = {
            "symbol": validate_symbol(symbol),
            "trade_id": obj["a"],
            "price": obj["p"],
            "quantity": obj["q"],
            "first_trade_id": obj["f"],
            "last_trade_id": obj["l"],
            "timestamp": to_ms(obj["T"], f"{where} T"),
            "is_buyer_maker": obj["m"],
            "is_best_match": obj.get("M"),
        }
    except (KeyError, TypeError) as exc:
        raise RecordError(f"{where}: missing field {exc} in {obj!r:.120}") from exc
    return _build(Trade, fields, where)


# --- data.binance.vision CSV ----------------------------------------------------------------


def _rows(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """CSV rows with 1-based line numbers; a header row (non-numeric first cell) is skipped."""
    for number, row in enumerate(csv.reader(lines), start=1):
        if not row or not any(cell.strip() for cell in row):
            continue
        if number == 1 and not row[0].strip().lstrip("-").isdigit():
            continue  # futures archives carry a header row, spot archives do not
        yield number, row


def candles_from_csv(symbol: str, interval: str, lines: Iterable[str]) -> Iterator[Candle]:
    """Kline CSV rows (12 columns, header or not, ms or µs) → Candles."""
    for number, row in _rows(lines):
        if len(row) < 11:
            raise RecordError(f"kline CSV line {number}: expected 12 columns, got {len(row)}")
        yield _candle(symbol, interval, row, f"kline CSV line {number}")


def trades_from_csv(symbol: str, lines: Iterable[str]) -> Iterator[Trade]:
    """aggTrades CSV rows → Trades.

    Spot: agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time,
    is_buyer_maker, is_best_match (no header). Futures: the same without is_best_match,
    with a header row.
    """
    for number, row in _rows(lines):
        where = f"aggTrades CSV line {number}"
        if len(row) not in (7, 8):
            raise RecordError(f"{where}: expected 7 or 8 columns, got {len(row)}")
        fields = {
            "symbol": validate_symbol(symbol),
            "trade_id": row[0],
            "price": row[1],
            "quantity": row[2],
            "first_trade_id": row[3],
            "last_trade_id": row[4],
            "timestamp": to_ms(row[5], f"{where} transact_time"),
            "is_buyer_maker": _bool(row[6], where),
            "is_best_match": _bool(row[7], where) if len(row) == 8 else None,
        }
        yield _build(Trade, fields, where)


def _bool(cell: str, where: str) -> bool:
    lowered = cell.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise RecordError(f"{where}: {cell!r} is not a boolean")


def record_model(kind: str) -> type[Candle] | type[Trade]:
    return {"candles": Candle, "trades": Trade}[kind]
