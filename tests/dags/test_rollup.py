"""The example downstream DAG: it parses, and its rollup turns a load event into hourly candles."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from streamforge.contracts.records import candles_from_csv
from streamforge.orchestration.rollup import roll_up, rollup_collection
from streamforge.stack.binance_replay import Catalog


def test_rollup_dag_is_scheduled_on_the_load_asset() -> None:
    from airflow.dag_processing.dagbag import DagBag

    from tests.dags.helpers import DAGS

    bag = DagBag(dag_folder=str(DAGS / "streamforge_rollup.py"))
    assert bag.import_errors == {}
    dag = bag.dags["streamforge_rollup__btcusdt_1h"]
    assert "name='binance/spot/BTCUSDT/api_candles_1m'" in repr(dag.timetable.asset_condition)


def test_rollup_of_a_day_with_a_gap(arango_db: Any) -> None:
    src = Catalog().kline_days[("spot", "BTCUSDT", "1m", "2020-01-02")].path
    with zipfile.ZipFile(src) as zf:
        lines = io.TextIOWrapper(zf.open(zf.namelist()[0]), encoding="utf-8").read().splitlines()
    candles = [c for c in candles_from_csv("BTCUSDT", "1m", lines) if not 1577964900000 <= c.open_time < 1577986200000]
    arango_db.create_collection("btcusdt_api_candles_1m_2020_01_02")
    arango_db.collection("btcusdt_api_candles_1m_2020_01_02").insert_many([c.to_document() for c in candles])
    extra = {
        "start": "2020-01-02T00:00:00Z",
        "end": "2020-01-03T00:00:00Z",
        "collections": ["btcusdt_api_candles_1m_2020_01_02"],
    }
    assert roll_up(arango_db, "BTCUSDT", extra) == 24 - 5  # 11:35-17:29 missing: hours 12..16 empty
    hours = arango_db.collection(rollup_collection("BTCUSDT"))
    eleven = hours.get("BTCUSDT_1h_1577962800000")  # 11:00, 35 candles before the gap
    assert eleven["candles"] == 35
    first = [c for c in candles if c.open_time < 1577923200000 + 3_600_000]
    zero = hours.get("BTCUSDT_1h_1577923200000")
    assert (zero["open"], zero["close"], zero["candles"]) == (first[0].open, first[-1].close, 60)
    assert zero["high"] == max(c.high for c in first)
    assert roll_up(arango_db, "BTCUSDT", extra) == 19 and hours.count() == 19  # re-run: same documents
