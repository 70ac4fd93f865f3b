"""Loader parts without Kafka: planning, gap checks, weight budget, HTTP retries, sources.

HTTP behaviour runs against the Binance replay server (real data, injected faults) or an
httpx.MockTransport where a header or status has to be exact.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamforge.contracts.config import LoaderSource
from streamforge.contracts.names import INTERVALS, DataType
from streamforge.contracts.records import Candle, Trade, candles_from_csv
from streamforge.stack.binance_replay import Catalog
from streamforge_workers.loader.archive import ArchiveClient, kline_url
from streamforge_workers.loader.binance_rest import BinanceRest, WeightLimiter
from streamforge_workers.loader.hooks import Hooks
from streamforge_workers.loader.sources import Hole, RecordSource, Segment, check_trade_order, grid_walk, plan
from streamforge_workers.runtime.worker import FatalError, Interrupted

DAY = 86_400_000
JAN1 = 1_577_836_800_000  # 2020-01-01T00:00:00Z
MAY8 = 1_778_198_400_000  # 2026-05-08T00:00:00Z
CANDLES_1M = DataType.parse("api_candles_1m")
TRADES = DataType.parse("api_trades")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


class Recorder:
    """Hooks that record waits and events instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.stop = threading.Event()

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted("stop")

    def hooks(self, real_sleep: bool = False) -> Hooks:
        def wait(seconds: float) -> None:
            self.waits.append(seconds)
            if real_sleep:
                time.sleep(seconds)
            self.check_stop()

        return Hooks(wait=wait, check_stop=self.check_stop, notify=lambda m, e: self.events.append((m, e)))


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


# -- plan -------------------------------------------------------------------------------------


def test_plan_rest_is_one_segment() -> None:
    assert plan(JAN1, JAN1 + 3 * DAY, LoaderSource.REST, CANDLES_1M, date(2026, 1, 1)) == [
        Segment("rest", JAN1, JAN1 + 3 * DAY)
    ]


def test_plan_auto_uses_archive_for_whole_past_days_only() -> None:
    start, end = ms("2020-01-01T12:00:00"), ms("2020-01-04T06:00:00")
    segments = plan(start, end, LoaderSource.AUTO, CANDLES_1M, date(2020, 1, 3))
    assert segments == [
        Segment("rest", start, ms("2020-01-02T00:00:00")),  # partial first day
        Segment("archive", ms("2020-01-02T00:00:00"), ms("2020-01-03T00:00:00")),
        Segment("rest", ms("2020-01-03T00:00:00"), end),  # today and the partial last day, merged
    ]


def test_plan_archive_splits_by_day_and_refuses_weekly() -> None:
    start, end = ms("2020-01-01T12:00:00"), ms("2020-01-02T06:00:00")
    assert [s.source for s in plan(start, end, LoaderSource.ARCHIVE, CANDLES_1M, date(2026, 1, 1))] == [
        "archive",
        "archive",
    ]
    with pytest.raises(FatalError, match="no daily files for api_candles_1w"):
        plan(start, end, LoaderSource.ARCHIVE, DataType.parse("api_candles_1w"), date(2026, 1, 1))
    assert plan(start, end, LoaderSource.AUTO, DataType.parse("api_candles_1M"), date(2026, 1, 1))[0].source == "rest"


# -- gap checks ---------------------------------------------------------------------------------


def _candle(open_time: int, interval: str = "1m") -> Candle:
    close = INTERVALS[interval].close_time(open_time)
    return Candle(
        symbol="BTCUSDT",
        interval=interval,
        open_time=open_time,
        close_time=close,
        open=1,
        high=1,
        low=1,
        close=1,
        volume=0,
        quote_asset_volume=0,
        number_of_trades=0,
        taker_buy_base_asset_volume=0,
        taker_buy_quote_asset_volume=0,
    )


def test_grid_walk_reports_holes_in_order() -> None:
    grid = list(INTERVALS["1m"].open_times(JAN1, JAN1 + DAY))
    holey = [_candle(t) for t in grid if not ms("2020-01-01T10:00:00") <= t <= ms("2020-01-01T10:02:00")]
    items = list(grid_walk(holey, grid, INTERVALS["1m"], "BTCUSDT 1m"))
    holes = [i for i in items if isinstance(i, Hole)]
    assert holes == [Hole(ms("2020-01-01T10:00:00"), ms("2020-01-01T10:02:00"), 3)]
    assert items.index(holes[0]) == 600  # between 09:59 and 10:03
    assert len(items) == 1440 - 3 + 1


def test_grid_walk_tail_hole_duplicate_and_month_grid() -> None:
    grid = list(INTERVALS["1m"].open_times(JAN1, JAN1 + DAY))
    items = list(grid_walk([_candle(t) for t in grid[:-1]], grid, INTERVALS["1m"], "x"))
    assert items[-1] == Hole(grid[-1], grid[-1], 1)
    with pytest.raises(FatalError, match="duplicate or out-of-order"):
        list(grid_walk([_candle(grid[0]), _candle(grid[0])], grid, INTERVALS["1m"], "x"))
    months = [_candle(t, "1M") for t in INTERVALS["1M"].open_times(JAN1, ms("2021-01-01T00:00:00"))]
    month_grid = INTERVALS["1M"].open_times(JAN1, ms("2021-01-01T00:00:00"))
    assert len(list(grid_walk(months, month_grid, INTERVALS["1M"], "x"))) == 12


def _trade(trade_id: int, first: int, last: int, ts: int) -> Trade:
    return Trade(
        symbol="BTCUSDT",
        trade_id=trade_id,
        price=1,
        quantity=1,
        first_trade_id=first,
        last_trade_id=last,
        timestamp=ts,
        is_buyer_maker=True,
    )


def test_trade_order_faults() -> None:
    ok = [_trade(10, 100, 101, JAN1), _trade(11, 102, 102, JAN1 + 5), _trade(12, 103, 110, JAN1 + 5)]
    check_trade_order(ok[0], ok[1], "x")
    check_trade_order(ok[0], _trade(13, 150, 150, JAN1 + 9), "x")  # an id hole: classified by the caller
    with pytest.raises(FatalError, match="broken trade chain: aggregate trade 11 starts at trade id 105"):
        check_trade_order(ok[0], _trade(11, 105, 106, JAN1 + 9), "x")
    with pytest.raises(FatalError, match="duplicate or out-of-order x aggregate trade 10 after 11"):
        check_trade_order(ok[1], ok[0], "x")


# -- weight budget ------------------------------------------------------------------------------


def test_weight_limiter_waits_for_the_next_minute() -> None:
    now = [120.0 + 50.0]  # 50 s into a minute
    limiter = WeightLimiter(100, clock=lambda: now[0])
    limiter.observe("98")
    assert limiter.delay(2) == 0
    assert limiter.delay(4) == pytest.approx(10.5)  # until the minute rolls over, plus margin
    now[0] = 180.2
    assert limiter.delay(4) == 0  # new minute: the counter starts again


def _mock(handler: Any) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def test_budget_pause_is_visible(rec: Recorder) -> None:
    now = [600.0 + 30.0]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[], headers={"X-MBX-USED-WEIGHT-1M": "2999"})

    with BinanceRest(
        "http://binance", rec.hooks(), weight_budget=3000, transport=_mock(handler), clock=lambda: now[0]
    ) as rest:
        rest.klines("BTCUSDT", "1m", JAN1, JAN1 + 1)
        rest.klines("BTCUSDT", "1m", JAN1, JAN1 + 1)
    assert sum(rec.waits) == pytest.approx(30.5) and max(rec.waits) <= 1.0  # slept in slices
    message, extra = rec.events[0]
    assert "request weight budget reached (2999/3000" in message and extra["reason"] == "weight"


# -- HTTP faults (replay server) ----------------------------------------------------------------


def test_429_waits_retry_after(binance_replay_clean: Any, rec: Recorder) -> None:
    binance_replay_clean.add_fault("rate_limit", path_prefix="/api/v3/klines", times=1, retry_after=2)
    with BinanceRest(binance_replay_clean.api_url, rec.hooks()) as rest:
        rows = rest.klines("BTCUSDT", "1m", JAN1, JAN1 + DAY - 1)
    assert len(rows) == 1000
    assert sum(rec.waits) == 2
    assert rec.events[0] == (
        "rate limited by Binance (HTTP 429), waiting 2 s",
        {"wait_seconds": 2, "reason": "429"},
    )


def test_418_longer_than_max_wait_fails_fast(binance_replay_clean: Any, rec: Recorder) -> None:
    binance_replay_clean.add_fault("ip_ban", path_prefix="/api/v3/klines", retry_after=7200)
    with BinanceRest(binance_replay_clean.api_url, rec.hooks(), max_wait_seconds=300) as rest:
        with pytest.raises(FatalError, match=r"Binance banned this IP for 7200 s \(HTTP 418\)"):
            rest.klines("BTCUSDT", "1m", JAN1, JAN1 + DAY - 1)
    assert rec.waits == []


def test_transient_failures_are_retried(binance_replay_clean: Any, rec: Recorder) -> None:
    with BinanceRest(binance_replay_clean.api_url, rec.hooks()) as rest:
        for fault in (
            {"kind": "server_error", "status": 503},
            {"kind": "truncate", "mode": "cut"},  # connection closed mid-body
            {"kind": "truncate", "mode": "half"},  # complete response, half a JSON document
        ):
            binance_replay_clean.add_fault(path_prefix="/api/v3/klines", times=2, **fault)
            assert len(rest.klines("BTCUSDT", "1m", JAN1, JAN1 + DAY - 1)) == 1000
    assert [e["reason"] for _, e in rec.events] == [
        "5xx",
        "5xx",
        "truncated",
        "truncated",
        "invalid_body",
        "invalid_body",
    ]
    assert [e["wait_seconds"] for _, e in rec.events] == [0.5, 1.0] * 3
    assert sum(rec.waits) == 4.5


def test_persistent_5xx_becomes_a_clear_error(binance_replay_clean: Any, rec: Recorder) -> None:
    binance_replay_clean.add_fault("server_error", status=502, path_prefix="/api/v3/klines")
    with BinanceRest(binance_replay_clean.api_url, rec.hooks()) as rest:
        with pytest.raises(FatalError, match=r"failed after 5 attempts: HTTP 502 \(code -1001"):
            rest.klines("BTCUSDT", "1m", JAN1, JAN1 + DAY - 1)


def test_bad_request_is_not_retried(binance_replay_clean: Any, rec: Recorder) -> None:
    with BinanceRest(binance_replay_clean.api_url, rec.hooks()) as rest:
        with pytest.raises(FatalError, match=r"HTTP 400 \(code -1121: Invalid symbol.\)"):
            rest.klines("NOSUCHCOIN", "1m", JAN1, JAN1 + DAY - 1)
    assert rec.waits == []


def test_stop_interrupts_a_slow_request(binance_replay_clean: Any, rec: Recorder) -> None:
    binance_replay_clean.add_fault("delay", delay_seconds=3, path_prefix="/api/v3/klines", times=1)
    threading.Timer(0.3, rec.stop.set).start()
    started = time.monotonic()
    with BinanceRest(binance_replay_clean.api_url, rec.hooks()) as rest, pytest.raises(Interrupted):
        rest.klines("BTCUSDT", "1m", JAN1, JAN1 + DAY - 1)
    assert time.monotonic() - started < 1.0


# -- archive ------------------------------------------------------------------------------------


def test_bad_checksum_is_an_error(binance_replay_clean: Any, rec: Recorder, tmp_path: Path) -> None:
    binance_replay_clean.add_fault("bad_checksum", path_prefix="/data/spot/daily/klines/BTCUSDT/1m/")
    url = kline_url(binance_replay_clean.archive_url, "BTCUSDT", "1m", date(2020, 1, 1))
    with ArchiveClient(rec.hooks(), tmp_path) as archive, pytest.raises(FatalError) as err:
        archive.download(url)
    assert str(err.value).startswith(f"checksum mismatch for {url}: .CHECKSUM says sha256 ")
    assert "downloaded file has dd579c62" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # the unverified zip is gone


# -- sources ------------------------------------------------------------------------------------


def _source(
    replay: Any,
    rec: Recorder,
    tmp: Path,
    dt: DataType,
    mode: LoaderSource,
    archive_base: str,
    symbol: str = "BTCUSDT",
) -> tuple[RecordSource, BinanceRest, ArchiveClient]:
    rest = BinanceRest(replay.api_url, rec.hooks())
    archive = ArchiveClient(rec.hooks(), tmp)
    return (
        RecordSource(
            symbol=symbol,
            data_type=dt,
            mode=mode,
            rest=rest,
            archive=archive,
            archive_base=archive_base,
            hooks=rec.hooks(),
        ),
        rest,
        archive,
    )


def _load(
    replay: Any,
    rec: Recorder,
    tmp: Path,
    dt: DataType,
    mode: LoaderSource,
    start: int,
    end: int,
    archive_base: str,
    symbol: str = "BTCUSDT",
) -> list[Any]:
    source, rest, archive = _source(replay, rec, tmp, dt, mode, archive_base, symbol)
    with rest, archive:
        return list(source.records(plan(start, end, mode, dt, date(2026, 11, 1))))


def test_rest_pages_are_trimmed_to_the_window(binance_replay_clean: Any, rec: Recorder, tmp_path: Path) -> None:
    start, end = ms("2020-01-01T10:30:00"), ms("2020-01-02T03:15:00")
    got = _load(
        binance_replay_clean,
        rec,
        tmp_path,
        CANDLES_1M,
        LoaderSource.REST,
        start,
        end,
        binance_replay_clean.archive_url,
    )
    assert [c.open_time for c in got] == list(range(start, end, 60_000))
    archived = _load(
        binance_replay_clean,
        rec,
        tmp_path,
        CANDLES_1M,
        LoaderSource.ARCHIVE,
        start,
        end,
        binance_replay_clean.archive_url,
    )
    assert archived == got


def test_hourly_month_candles_over_rest(binance_replay_clean: Any, rec: Recorder, tmp_path: Path) -> None:
    dt = DataType.parse("api_candles_1h")
    got = _load(
        binance_replay_clean,
        rec,
        tmp_path,
        dt,
        LoaderSource.REST,
        ms("2024-08-01T00:00:00"),
        ms("2024-09-01T00:00:00"),
        binance_replay_clean.archive_url,
    )
    assert len(got) == 744
    assert binance_replay_clean.stats()["requests"] == {"/api/v3/klines": 1}  # 744 < 1000: one page


def test_auto_falls_back_to_rest_when_the_archive_has_no_file(
    binance_replay_clean: Any, rec: Recorder, tmp_path: Path
) -> None:
    no_such_market = f"{binance_replay_clean.base_url}/data/futures/um"  # BTCUSDT 1m is not there
    got = _load(binance_replay_clean, rec, tmp_path, CANDLES_1M, LoaderSource.AUTO, JAN1, JAN1 + DAY, no_such_market)
    assert len(got) == 1440
    assert rec.events[0][1]["fallback"] == "rest"
    assert "HTTP 404" in rec.events[0][0]
    with pytest.raises(FatalError, match=r"archive file not found: .*BTCUSDT-1m-2020-01-01.zip \(HTTP 404"):
        _load(
            binance_replay_clean,
            rec,
            tmp_path,
            CANDLES_1M,
            LoaderSource.ARCHIVE,
            JAN1,
            JAN1 + DAY,
            no_such_market,
        )


def test_trades_rest_equals_archive(binance_replay_clean: Any, rec: Recorder, tmp_path: Path) -> None:
    """A 90-minute slice: REST (hour-by-hour search, then fromId) and the zip agree id for id."""
    start, end = MAY8 + 1_234, MAY8 + 90 * 60_000  # the search starts inside the first hour
    base = binance_replay_clean.futures_cm_archive_url
    rest = _load(binance_replay_clean, rec, tmp_path, TRADES, LoaderSource.REST, start, end, base, "BTCUSD_PERP")
    arch = _load(binance_replay_clean, rec, tmp_path, TRADES, LoaderSource.ARCHIVE, start, end, base, "BTCUSD_PERP")
    assert len(rest) == len(arch) > 3_000
    assert start <= rest[0].timestamp and rest[-1].timestamp < end
    # The futures archive has no best-match column (None); the replay's REST says true.
    strip = [t.model_copy(update={"is_best_match": None}) for t in rest]
    assert strip == arch


def test_candle_archive_rows_equal_the_zip(binance_replay_clean: Any, rec: Recorder, tmp_path: Path) -> None:
    src = Catalog().kline_days[("spot", "BTCUSDT", "1m", "2020-01-02")].path
    import io
    import zipfile

    with zipfile.ZipFile(src) as zf:
        text = zf.read(zf.namelist()[0]).decode()
    expected = list(candles_from_csv("BTCUSDT", "1m", io.StringIO(text)))
    got = _load(
        binance_replay_clean,
        rec,
        tmp_path,
        CANDLES_1M,
        LoaderSource.ARCHIVE,
        JAN1 + DAY,
        JAN1 + 2 * DAY,
        binance_replay_clean.archive_url,
    )
    assert got == expected


def test_blocking_calls_and_waits_keep_the_heartbeat(rec: Recorder) -> None:
    beats: list[float] = []
    hooks = rec.hooks()
    hooks.heartbeat = lambda activity: beats.append(time.monotonic())
    assert hooks.call(lambda: time.sleep(0.7) or 42) == 42
    assert len(beats) >= 2
    hooks.pause(3.5, "weight", "budget")
    assert rec.events[-1][0] == "budget, waiting 3.5 s"
    assert rec.waits[-4:] == [1.0, 1.0, 1.0, 0.5] and len(beats) >= 6


def test_an_empty_fromid_page_is_not_taken_as_the_end(rec: Recorder, tmp_path: Path) -> None:
    """A flaky empty page mid-window: the loader searches by time again instead of finishing short."""
    trades = [
        {
            "a": i,
            "p": "1",
            "q": "1",
            "f": 10 * i,
            "l": 10 * i + 9,
            "T": JAN1 + 1_000 * i,
            "m": False,
            "M": True,
        }
        for i in range(1, 3001)
    ]
    flaky = {"left": 1}
    calls: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        calls.append(q)
        limit = int(q["limit"])
        if "fromId" in q:
            if flaky["left"]:
                flaky["left"] -= 1
                return httpx.Response(200, json=[])
            rows = [t for t in trades if t["a"] >= int(q["fromId"])]
        else:
            rows = [t for t in trades if int(q["startTime"]) <= t["T"] <= int(q["endTime"])]
        return httpx.Response(200, json=rows[:limit])

    hooks = rec.hooks()
    rest = BinanceRest("http://binance", hooks, transport=_mock(handler))
    with rest, ArchiveClient(hooks, tmp_path) as archive:
        source = RecordSource(
            symbol="BTCUSDT",
            data_type=TRADES,
            mode=LoaderSource.REST,
            rest=rest,
            archive=archive,
            archive_base="http://unused",
            hooks=hooks,
        )
        got = list(source.records([Segment("rest", JAN1, JAN1 + DAY)]))
    assert [t.trade_id for t in got] == list(range(1, 3001))
    searches = [c for c in calls if "startTime" in c]
    assert int(searches[1]["startTime"]) == JAN1 + 1_000 * 1000 + 1  # resumed after trade 1000


def test_trades_rest_reaches_the_end_of_the_data(binance_replay_clean: Any, rec: Recorder, tmp_path: Path) -> None:
    """The last 10 minutes of the replayed day: paging runs dry, the time search confirms the end."""
    start, end = MAY8 + DAY - 600_000, MAY8 + DAY
    base = binance_replay_clean.futures_cm_archive_url
    got = _load(binance_replay_clean, rec, tmp_path, TRADES, LoaderSource.REST, start, end, base, "BTCUSD_PERP")
    assert got[-1].trade_id == 480_643_182 and start <= got[0].timestamp
    assert [t.trade_id for t in got] == list(range(got[0].trade_id, 480_643_183))
