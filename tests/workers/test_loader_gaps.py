"""How the loader classifies holes in real history (contracts/gaps.py), without Kafka.

Every case runs RecordSource against the Binance replay server serving the real files, with the
fault shapes of real history: a maintenance window missing in both sources, an archive lacking
rows REST has, an aggTrades id hole, a symbol not yet listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamforge.contracts.config import LoaderSource
from streamforge.contracts.gaps import ConfirmedBy
from streamforge.contracts.names import DataType
from streamforge_workers.loader.archive import ArchiveClient
from streamforge_workers.loader.binance_rest import BinanceRest
from streamforge_workers.loader.sources import RecordSource, Segment, plan
from streamforge_workers.runtime.worker import FatalError
from tests.workers.test_loader_units import DAY, JAN1, MAY8, Recorder, ms

CANDLES_1M = DataType.parse("api_candles_1m")
TRADES = DataType.parse("api_trades")
JAN2 = JAN1 + DAY
MAINTENANCE = (ms("2020-01-02T11:35:00"), ms("2020-01-02T17:30:00"))  # 355 minutes, end exclusive
FIRST_TRADE = 480_537_903  # BTCUSD_PERP 2026-05-08, first aggregate trade id of the day


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def _run(
    replay: Any,
    rec: Recorder,
    tmp: Path,
    dt: DataType,
    mode: LoaderSource,
    segments: list[Segment],
    archive_base: str,
    symbol: str = "BTCUSDT",
) -> tuple[list[Any], RecordSource]:
    with BinanceRest(replay.api_url, rec.hooks()) as rest, ArchiveClient(rec.hooks(), tmp) as archive:
        source = RecordSource(
            symbol=symbol,
            data_type=dt,
            mode=mode,
            rest=rest,
            archive=archive,
            archive_base=archive_base,
            hooks=rec.hooks(),
        )
        return list(source.records(segments)), source


def _day(mode: LoaderSource, start: int = JAN2) -> list[Segment]:
    from datetime import date

    return plan(start, start + DAY, mode, CANDLES_1M, date(2026, 1, 1))


@pytest.mark.parametrize(
    ("mode", "confirmed"),
    [(LoaderSource.AUTO, ConfirmedBy.REST_RANGE), (LoaderSource.REST, ConfirmedBy.REST_RESPONSE)],
)
def test_exchange_gap_in_both_sources_is_loaded_around_and_recorded(
    binance_replay_clean: Any, rec: Recorder, tmp_path: Path, mode: LoaderSource, confirmed: ConfirmedBy
) -> None:
    a, b = MAINTENANCE
    binance_replay_clean.add_fault("gap", gap_start_ms=a, gap_end_ms=b, symbol="BTCUSDT", interval="1m")
    got, source = _run(
        binance_replay_clean, rec, tmp_path, CANDLES_1M, mode, _day(mode), binance_replay_clean.archive_url
    )
    assert len(got) == 1085
    assert not any(a <= c.open_time < b for c in got)
    assert [c.open_time for c in got] == sorted(c.open_time for c in got)
    assert [(g.first, g.last, g.count, g.confirmed_by) for g in source.gaps] == [(a, b - 60_000, 355, confirmed)]
    assert source.gaps[0].describe() == "2020-01-02 11:35-17:29 UTC (355 candles)"
    assert source.repairs == []


def test_archive_lacking_rows_rest_has_is_repaired(binance_replay_clean: Any, rec: Recorder, tmp_path: Path) -> None:
    a = ms("2020-01-02T08:00:00")
    binance_replay_clean.add_fault(
        "gap", path_prefix="/data/", gap_start_ms=a, gap_end_ms=a + 60 * 60_000, symbol="BTCUSDT", interval="1m"
    )
    segments = _day(LoaderSource.AUTO)
    assert [s.source for s in segments] == ["archive"]
    got, source = _run(
        binance_replay_clean, rec, tmp_path, CANDLES_1M, LoaderSource.AUTO, segments, binance_replay_clean.archive_url
    )
    assert [c.open_time for c in got] == list(range(JAN2, JAN2 + DAY, 60_000))
    assert source.gaps == []
    assert [(r.first, r.last, r.count) for r in source.repairs] == [(a, a + 59 * 60_000, 60)]
    assert any("repaired from REST" in message for message, _ in rec.events)
    # LOADER_SOURCE=archive does not repair from REST: a clear error instead of a silent hole.
    with pytest.raises(FatalError, match="the archive lacks 60 candles missing from 2020-01-02T08:00:00Z"):
        _run(
            binance_replay_clean,
            rec,
            tmp_path,
            CANDLES_1M,
            LoaderSource.ARCHIVE,
            _day(LoaderSource.ARCHIVE),
            binance_replay_clean.archive_url,
        )


def test_a_day_without_any_data_is_both_sources_empty(binance_replay_clean: Any, rec: Recorder, tmp_path: Path) -> None:
    binance_replay_clean.add_fault("listing", symbol="BTCUSDT", listed_at_ms=JAN1 + 2 * DAY)
    got, source = _run(
        binance_replay_clean,
        rec,
        tmp_path,
        CANDLES_1M,
        LoaderSource.AUTO,
        _day(LoaderSource.AUTO),
        binance_replay_clean.archive_url,
    )
    assert got == []
    assert [(g.count, g.confirmed_by) for g in source.gaps] == [(1440, ConfirmedBy.BOTH_SOURCES_EMPTY)]


@pytest.mark.parametrize("both", [False, True])
def test_aggtrades_id_hole(binance_replay_clean: Any, rec: Recorder, tmp_path: Path, both: bool) -> None:
    first, last = FIRST_TRADE + 500, FIRST_TRADE + 549
    prefix = "/" if both else "/data/"
    binance_replay_clean.add_fault("trade_gap", path_prefix=prefix, first_id=first, last_id=last)
    segments = [Segment("archive", MAY8, MAY8 + 3_600_000)]
    got, source = _run(
        binance_replay_clean,
        rec,
        tmp_path,
        TRADES,
        LoaderSource.AUTO,
        segments,
        binance_replay_clean.futures_cm_archive_url,
        "BTCUSD_PERP",
    )
    ids = [t.trade_id for t in got]
    assert ids == sorted(ids) and ids[0] == FIRST_TRADE
    if both:
        assert not any(first <= i <= last for i in ids)
        assert len(ids) == ids[-1] - ids[0] + 1 - 50
        assert [(g.first, g.last, g.count, g.confirmed_by) for g in source.gaps] == [
            (first, last, 50, ConfirmedBy.REST_FROM_ID)
        ]
        assert source.gaps[0].unit == "trade_id"
    else:
        assert ids == list(range(ids[0], ids[-1] + 1))  # every id stored
        assert source.gaps == []
        assert [(r.first, r.last, r.count) for r in source.repairs] == [(first, last, 50)]
