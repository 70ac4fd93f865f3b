"""The sink's fast codec accepts what the contract models accept and stores what they would store."""

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamforge.contracts.record_codec import RecordCodec, as_dict, import_body
from streamforge.contracts.records import Candle, RecordError, Trade, candles_from_csv, trades_from_csv
from streamforge.stack.paths import SHARED_DATA

BINANCE = SHARED_DATA / "binance"


def zip_lines(path: Path) -> Iterator[str]:
    with zipfile.ZipFile(path) as archive:
        with archive.open(archive.namelist()[0]) as member:
            yield from io.TextIOWrapper(member, encoding="utf-8")


def real_candles() -> list[Candle]:
    return list(candles_from_csv("BTCUSDT", "1m", zip_lines(BINANCE / "spot/klines/1m/BTCUSDT-1m-2020-01-01.zip")))


def real_trades() -> list[Trade]:
    path = BINANCE / "futures-cm/aggTrades/BTCUSD_PERP-aggTrades-2026-05-08.zip"
    return list(trades_from_csv("BTCUSD_PERP", zip_lines(path)))[:5000]


CANDLES = RecordCodec("candles", "BTCUSDT", "1m", "api_candles_1m")
TRADES = RecordCodec("trades", "BTCUSD_PERP", None, "api_trades")


def test_real_candles_and_trades_become_the_contract_documents() -> None:
    for codec, records in ((CANDLES, real_candles()), (TRADES, real_trades())):
        docs = [codec.decode(r.to_bytes()) for r in records]
        assert [as_dict(d) for d in docs] == [r.to_document() for r in records]
        # The import body is one JSON document per line, the same documents again.
        lines = import_body(docs).decode().splitlines()
        assert [json.loads(line) for line in lines] == [r.to_document() for r in records]


def _mutate(record: Candle | Trade, **changes: object) -> bytes:
    fields = json.loads(record.to_bytes())
    fields.update(changes)
    return json.dumps(fields).encode()


CANDLE = real_candles()[0]
TRADE = real_trades()[0]
BAD_CANDLES = {
    "not-json": b'{"symbol": "BTCUSDT", "interval": "1m", "open_time": 15778',
    "close-time-in-us": _mutate(CANDLE, close_time=CANDLE.close_time * 1000),
    "close-time-off-grid": _mutate(CANDLE, close_time=CANDLE.close_time + 1),
    "open-time-in-seconds": _mutate(CANDLE, open_time=CANDLE.open_time // 1000),
    "negative-volume": _mutate(CANDLE, volume=-1),
    "high-below-open": _mutate(CANDLE, high=CANDLE.open - 1),
    "low-above-close": _mutate(CANDLE, low=CANDLE.close + 1),
    "unknown-field": _mutate(CANDLE, extra=1),
    "key-on-the-wire": _mutate(CANDLE, _key="x"),
    "empty-key-on-the-wire": _mutate(CANDLE, _key=""),
    "unknown-interval": _mutate(CANDLE, interval="7m"),
    "missing-field": json.dumps({k: v for k, v in json.loads(CANDLE.to_bytes()).items() if k != "low"}).encode(),
    "array": b"[1, 2]",
    "empty": b"",
}
BAD_TRADES = {
    "ids-reversed": _mutate(TRADE, first_trade_id=TRADE.last_trade_id + 1),
    "negative-id": _mutate(TRADE, trade_id=-1),
    "bool-as-text": _mutate(TRADE, is_buyer_maker="maybe"),
    "timestamp-in-seconds": _mutate(TRADE, timestamp=TRADE.timestamp // 1000),
    "key-on-the-wire": _mutate(TRADE, _key=""),
}


@pytest.mark.parametrize(("codec", "model", "raw"), [
    *[pytest.param(CANDLES, Candle, raw, id=f"candle-{name}") for name, raw in BAD_CANDLES.items()],
    *[pytest.param(TRADES, Trade, raw, id=f"trade-{name}") for name, raw in BAD_TRADES.items()],
])  # fmt: skip
def test_refused_with_the_contract_message(codec: RecordCodec, model: type[Candle | Trade], raw: bytes) -> None:
    with pytest.raises(RecordError) as contract:
        model.from_bytes(raw)
    with pytest.raises(RecordError) as fast:
        codec.decode(raw)
    assert str(fast.value) == str(contract.value)


def test_lenient_json_the_contract_accepts_is_accepted_and_normalised() -> None:
    # pydantic's JSON mode takes numbers as strings; the fast path hands those to the model.
    raw = _mutate(CANDLE, open=str(CANDLE.open), number_of_trades=float(CANDLE.number_of_trades))
    assert as_dict(CANDLES.decode(raw)) == Candle.from_bytes(raw).to_document() == CANDLE.to_document()


def test_records_of_another_stream_are_refused() -> None:
    with pytest.raises(RecordError, match="record of symbol 'ETHUSDT' on the topic of BTCUSDT"):
        CANDLES.decode(_mutate(CANDLE, symbol="ETHUSDT"))
    hourly = _mutate(CANDLE, interval="1h", close_time=CANDLE.open_time + 3_600_000 - 1)
    with pytest.raises(RecordError, match="1h candle on the topic of api_candles_1m"):
        CANDLES.decode(hourly)
    with pytest.raises(RecordError, match="on the topic of BTCUSD_PERP"):
        TRADES.decode(_mutate(TRADE, symbol="BTCUSDT"))


def test_many_at_once_is_each_one_decoded_up_to_the_first_refused() -> None:
    trades = real_trades()[:50]
    raws = [t.to_bytes() for t in trades]
    docs, error = TRADES.decode_many(raws)
    assert error is None and [as_dict(d) for d in docs] == [t.to_document() for t in trades]

    lenient = _mutate(TRADE, price=str(TRADE.price))  # valid by the contract, not for the fast path
    for name, bad in BAD_TRADES.items():
        docs, error = TRADES.decode_many([*raws[:7], lenient, bad, *raws[7:]])
        assert [as_dict(d) for d in docs] == [t.to_document() for t in (*trades[:7], TRADE)], name
        with pytest.raises(RecordError) as one:
            TRADES.decode(bad)
        assert isinstance(error, RecordError) and str(error) == str(one.value), name

    candles = real_candles()[:30]
    docs, error = CANDLES.decode_many([c.to_bytes() for c in candles] + [None])  # type: ignore[list-item]
    assert [as_dict(d) for d in docs] == [c.to_document() for c in candles]
    assert isinstance(error, RecordError) and str(error) == str(_refusal(CANDLES, b""))
    assert CANDLES.decode_many([]) == ([], None)


def _refusal(codec: RecordCodec, raw: bytes) -> RecordError:
    with pytest.raises(RecordError) as refused:
        codec.decode(raw)
    return refused.value
