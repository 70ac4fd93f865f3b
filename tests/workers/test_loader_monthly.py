"""Whole calendar months from the monthly archive: the same records as the daily files, verified.

The replay serves the real BTCUSDT 1h 2024-08 month as a monthly zip and as daily zips, each
with its `.CHECKSUM` (plugins/streamforge/stack/binance_replay).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamforge.contracts.records import Candle, Trade
from streamforge.stack.binance_replay import ReplayServer
from streamforge.stack.binance_replay.catalog import default_data_dirs
from streamforge.stack.binance_replay.synthetic import write_agg_trade_days
from streamforge_workers.loader.monthly import daily_segments, use_monthly_archives
from streamforge_workers.loader.sources import Segment
from tests.workers.test_loader import Loader, read_topic

pytestmark = pytest.mark.kafka

DAY_MS = 86_400_000
AUG_2024 = 1_722_470_400_000  # 2024-08-01T00:00:00Z
SEP_2024 = AUG_2024 + 31 * DAY_MS


@pytest.fixture
def loader(kafka_broker: Any, binance_replay_clean: Any, tmp_path: Path) -> Loader:
    return Loader(kafka_broker, binance_replay_clean, tmp_path)


def days(start_ms: int, n: int) -> list[Segment]:
    return [Segment("archive", start_ms + i * DAY_MS, start_ms + (i + 1) * DAY_MS) for i in range(n)]


def test_only_complete_ended_months_use_the_monthly_file() -> None:
    month = days(AUG_2024, 31)
    assert use_monthly_archives(month, date(2024, 9, 1)) == [Segment("archive", AUG_2024, SEP_2024, monthly=True)]
    assert use_monthly_archives(month, date(2024, 8, 31)) == month  # the month has not ended yet
    assert use_monthly_archives(month[1:], date(2025, 1, 1)) == month[1:]  # not the whole month
    rest_tail = [*month[:-1], Segment("rest", SEP_2024 - DAY_MS, SEP_2024)]
    assert use_monthly_archives(rest_tail, date(2025, 1, 1)) == rest_tail
    with_next = [*month, *days(SEP_2024, 2)]
    assert use_monthly_archives(with_next, date(2025, 1, 1)) == [
        Segment("archive", AUG_2024, SEP_2024, monthly=True),
        *days(SEP_2024, 2),
    ]
    assert daily_segments(Segment("archive", AUG_2024, SEP_2024, monthly=True)) == month


def _records(loader: Loader, time_range: str) -> tuple[list[Candle], set[str]]:
    loader.replay.reset_stats()
    run = loader.run(loader.env(time_range=time_range, data_type="api_candles_1h", source="auto"))
    assert run.rc == 0, run.explain()
    records, eos = read_topic(loader.broker, run.topic)
    assert eos == {0: len(records)}
    files = {p for p in loader.replay.stats()["requests"] if p.startswith("/data/")}
    return [Candle.from_bytes(v) for _, _, v in records], files


def test_a_month_from_the_monthly_file_equals_the_same_days_from_daily_files(loader: Loader) -> None:
    monthly, files = _records(loader, "2024-08-01T00:00:00Z/2024-09-01T00:00:00Z")
    assert files == {
        "/data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-08.zip",
        "/data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-08.zip.CHECKSUM",
    }
    # Two windows that are not whole months: the same days from 31 daily files.
    first, files_1 = _records(loader, "2024-08-01T00:00:00Z/2024-08-16T00:00:00Z")
    second, files_2 = _records(loader, "2024-08-16T00:00:00Z/2024-09-01T00:00:00Z")
    assert len(files_1 | files_2) == 2 * 31 and all("/daily/" in f for f in files_1 | files_2)
    assert len(monthly) == 744
    assert [c.to_document() for c in monthly] == [c.to_document() for c in first + second]


def test_monthly_checksum_mismatch_is_a_clear_failure(loader: Loader) -> None:
    loader.replay.add_fault("bad_checksum", path_prefix="/data/spot/monthly/klines/BTCUSDT/1h/")
    run = loader.run(
        loader.env(time_range="2024-08-01T00:00:00Z/2024-09-01T00:00:00Z", data_type="api_candles_1h", source="auto")
    )
    assert run.rc == 1, run.explain()
    message = run.terminal.error_message or ""
    assert re.match(
        r"checksum mismatch for http://\S+/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-08\.zip: "
        r"\.CHECKSUM says sha256 [0-9a-f]{64}, downloaded file has [0-9a-f]{64}$",
        message,
    ), message
    records, eos = read_topic(loader.broker, run.topic, timeout=5)
    assert records == [] and eos == {}


# --- monthly aggTrades: a SYNTHETIC month (the real BTCUSD_PERP day, shifted; see binance_replay/synthetic.py) ---

FEB_2021 = [date(2021, 2, 1) + timedelta(days=i) for i in range(28)]
TRADES_PER_DAY = 40


@pytest.fixture(scope="module")
def synthetic_replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("synthetic-binance")
    write_agg_trade_days(root, FEB_2021, per_day=TRADES_PER_DAY)
    assert "SYNTHETIC" in (root / "SYNTHETIC.md").read_text()
    with ReplayServer(data_dirs=[*default_data_dirs(), root]) as server:
        yield server


def _trades(broker: Any, replay: Any, tmp: Path, time_range: str) -> tuple[list[Trade], set[str]]:
    loader = Loader(broker, replay, tmp)
    replay.reset_stats()
    env = loader.env(time_range=time_range, symbol="BTCUSD_PERP", data_type="api_trades", source="auto")
    run = loader.run(env | {"BINANCE_ARCHIVE_URL": replay.futures_cm_archive_url})
    assert run.rc == 0, run.explain()
    records, eos = read_topic(broker, run.topic)
    assert eos == {0: len(records)}
    files = {p for p in replay.stats()["requests"] if p.startswith("/data/")}
    return [Trade.from_bytes(v) for _, _, v in records], files


def test_a_trades_month_from_the_monthly_file_equals_its_daily_files(
    kafka_broker: Any, synthetic_replay: Any, tmp_path: Path
) -> None:
    month_zip = "/data/futures/cm/monthly/aggTrades/BTCUSD_PERP/BTCUSD_PERP-aggTrades-2021-02.zip"
    monthly, files = _trades(kafka_broker, synthetic_replay, tmp_path, "2021-02-01/2021-03-01")
    assert files == {month_zip, month_zip + ".CHECKSUM"}
    first, files_1 = _trades(kafka_broker, synthetic_replay, tmp_path, "2021-02-01/2021-02-15")
    second, files_2 = _trades(kafka_broker, synthetic_replay, tmp_path, "2021-02-15/2021-03-01")
    assert len(files_1 | files_2) == 2 * 28 and all("/daily/" in f for f in files_1 | files_2)
    assert len(monthly) == 28 * TRADES_PER_DAY
    assert [t.to_document() for t in monthly] == [t.to_document() for t in first + second]
    # An incomplete month has no monthly file (the replay publishes a month once every day exists).
    assert httpx.get(synthetic_replay.base_url + month_zip.replace("2021-02", "2021-03")).status_code == 404
