"""The sink's hot path: data-topic bytes → stored documents → one JSON-lines import body.

`RecordCodec.decode` accepts exactly what `Candle.from_bytes` / `Trade.from_bytes` (records.py,
the contract) accept and yields the same document as `.to_document()`, at a fraction of the cost:
msgspec decodes into a typed struct with the same field constraints (C, no per-field Python),
then the cross-field rules of the models run as a few comparisons. Anything the fast path does
not accept is handed to the pydantic model, so the set of accepted records, the documents and
every error message stay those of the contract (tests/unit/test_record_codec.py proves it).

The codec also checks that the record belongs to the topic's stream (symbol, interval): a valid
record of another stream would land in the wrong collection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import msgspec

from streamforge.contracts.names import INTERVALS
from streamforge.contracts.records import _MS_MAX, _MS_MIN, Candle, RecordError, Trade

_Ms = Annotated[int, msgspec.Meta(ge=_MS_MIN, lt=_MS_MAX)]
_Count = Annotated[int, msgspec.Meta(ge=0)]
_Amount = Annotated[float, msgspec.Meta(ge=0)]


class CandleDocument(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Candle's fields in Candle's order, plus the document `_key` (never accepted on the wire)."""

    symbol: str
    interval: str
    open_time: _Ms
    close_time: _Ms
    open: _Amount
    high: _Amount
    low: _Amount
    close: _Amount
    volume: _Amount
    quote_asset_volume: _Amount
    number_of_trades: _Count
    taker_buy_base_asset_volume: _Amount
    taker_buy_quote_asset_volume: _Amount
    key: str | msgspec.UnsetType = msgspec.field(default=msgspec.UNSET, name="_key")


class TradeDocument(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Trade's fields in Trade's order, plus the document `_key` (never accepted on the wire)."""

    symbol: str
    trade_id: _Count
    price: _Amount
    quantity: _Amount
    first_trade_id: _Count
    last_trade_id: _Count
    timestamp: _Ms
    is_buyer_maker: bool
    is_best_match: bool | None = None
    key: str | msgspec.UnsetType = msgspec.field(default=msgspec.UNSET, name="_key")


Document = CandleDocument | TradeDocument


class RecordCodec:
    """Decoder of one stream's records (symbol, kind, interval).

    :param kind: "candles" or "trades" (DataKind value).
    :param symbol: the stream's symbol; a record of another symbol is refused.
    :param interval: the candle interval code (None for trades); another interval is refused.
    :param stream: how the stream is named in errors (the data type, e.g. api_candles_1m).
    """

    def __init__(self, kind: str, symbol: str, interval: str | None, stream: str) -> None:
        self._symbol = symbol
        self._stream = stream
        self._model: type[Candle] | type[Trade]
        self._decoder: msgspec.json.Decoder
        self._keyed: Callable[[list[Any]], bool]
        if kind == "candles":
            if interval not in INTERVALS:
                raise ValueError(f"candle stream {stream} needs a known interval, got {interval!r}")
            self._model = Candle
            self._interval = INTERVALS[interval]
            self._decoder = msgspec.json.Decoder(CandleDocument)
            self._keyed = self._keyed_candles
        elif kind == "trades":
            self._model = Trade
            self._decoder = msgspec.json.Decoder(TradeDocument)
            self._keyed = self._keyed_trades
        else:
            raise ValueError(f"unknown record kind {kind!r}")

    # --- decoding ---------------------------------------------------------------------------

    def decode(self, raw: bytes) -> Document:
        """One data-topic value → its document; RecordError (the contract's message) otherwise."""
        try:
            doc = self._decoder.decode(raw)
        except (msgspec.DecodeError, TypeError):  # TypeError: no value at all (None)
            return self._slow(raw)
        return doc if self._keyed([doc]) else self._slow(raw)

    def decode_many(self, raws: Sequence[bytes]) -> tuple[list[Document], RecordError | None]:
        """Many values → their documents, in order, up to the first invalid one.

        Returns (documents, None) when every value is valid, else (the documents before the first
        invalid value, its RecordError): the refused value is `raws[len(documents)]`. The same
        results as `decode` per value, with no Python call per value on the common path.
        """
        try:
            docs = list(map(self._decoder.decode, raws))
        except (msgspec.DecodeError, TypeError):
            docs = None
        if docs is not None and self._keyed(docs):
            return docs, None
        # Some value is not for the fast path: one by one, so the first bad one is found and worded.
        out: list[Document] = []
        for raw in raws:
            try:
                out.append(self.decode(raw))
            except RecordError as exc:
                return out, exc
        return out, None

    def _keyed_candles(self, docs: list[CandleDocument]) -> bool:
        """The cross-field rules of Candle and the stream check; keys them all, or False at the first miss."""
        symbol, code, close_time, unset = self._symbol, self._interval.code, self._interval.close_time, msgspec.UNSET
        for c in docs:
            if (
                c.key is not unset
                or c.symbol != symbol
                or c.interval != code
                or c.close_time != close_time(c.open_time)
                or c.high < c.open
                or c.high < c.close
                or c.high < c.low
                or c.low > c.open
                or c.low > c.close
            ):
                return False
            c.key = f"{symbol}_{code}_{c.open_time}"
        return True

    def _keyed_trades(self, docs: list[TradeDocument]) -> bool:
        """The cross-field rule of Trade and the stream check; keys them all, or False at the first miss."""
        symbol, unset = self._symbol, msgspec.UNSET
        for t in docs:
            if t.key is not unset or t.symbol != symbol or t.last_trade_id < t.first_trade_id:
                return False
            t.key = f"{symbol}_{t.trade_id}"
        return True

    def _slow(self, raw: bytes) -> Document:
        """The contract model decides what the fast path did not accept (and words the error)."""
        raw = raw or b""  # a tombstone (no value) is refused like an empty one
        record = self._model.from_bytes(raw)  # raises RecordError for anything invalid
        if isinstance(record, Candle) and record.interval != self._interval.code:
            raise RecordError(f"{record.interval} candle on the topic of {self._stream}")
        # Valid by the contract, just not in the fast path's strict JSON types (e.g. "1.5" for a
        # number): take the model's normalised values.
        doc = self._decoder.decode(record.to_bytes())
        if doc.symbol != self._symbol:
            raise RecordError(f"record of symbol {doc.symbol!r} on the topic of {self._symbol}")
        doc.key = record.key
        return doc


_ENCODER = msgspec.json.Encoder()


def import_body(docs: Sequence[Document]) -> bytes:
    """JSON lines, one document each: the body of ArangoDB's `/_api/import?type=documents`."""
    return _ENCODER.encode_lines(docs)


def as_dict(doc: Document) -> dict[str, object]:
    """The document in the shape of the contract's `to_document()`."""
    out = msgspec.structs.asdict(doc)
    out["_key"] = out.pop("key")
    return out
