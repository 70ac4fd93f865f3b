"""Irregular history end to end (dag.test, local runner, real Kafka, ArangoDB test server, replay).

A maintenance window missing in both sources, an archive lacking rows REST has, an aggTrades
archive with id holes, listing boundaries and a symbol that stopped trading: the run succeeds
with exactly what exists, and says so in the verify report, the gap ledger, the run note text
and the Asset event's extra.

The aggTrades day is the replay's real COIN-M file (BTCUSD_PERP 2026-05-08, 105 280 aggregate
trades, served under data/futures/cm); the replay answers `/api/v3/aggTrades` for every symbol
it has data for, so the loader's REST client reads the same day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamforge.contracts.gaps import GAP_COLLECTION
from streamforge.contracts.names import collection_name, dag_id
from tests.dags.test_e2e_local import DAG_1M, _topics, airflow_db_template, dag_test, service_env, services, webhook
from tests.workers.test_loader_units import ms

__all__ = ["airflow_db_template", "services", "webhook"]  # fixtures re-used from the e2e module

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

JAN2 = ms("2020-01-02T00:00:00")
GAP_FIRST, GAP_END = ms("2020-01-02T11:35:00"), ms("2020-01-02T17:30:00")  # 355 minutes
COLLECTION = "btcusdt_api_candles_1m_2020_01_02"


@pytest.fixture
def replay(services: dict[str, Any]) -> Iterator[Any]:
    server = services["binance"]
    server.clear_faults()
    yield server
    server.clear_faults()


def _run(
    tmp_path: Path,
    template: Path,
    services: dict[str, Any],
    day: str,
    *,
    symbol: str = "BTCUSDT",
    data_type: str = "api_candles_1m",
    env: dict[str, str] | None = None,
    **conf: Any,
) -> tuple[Any, dict[str, Any]]:
    from tests.dags.e2e import e2e_catalog

    tmp_path.mkdir(parents=True, exist_ok=True)
    catalog = e2e_catalog(tmp_path / "catalog.yaml", [data_type])
    if symbol != "BTCUSDT":
        doc = yaml.safe_load(catalog.read_text())
        doc["pipelines"][0]["symbols"] = [symbol]
        catalog.write_text(yaml.safe_dump(doc, sort_keys=False))
    run = dag_test(tmp_path, template, catalog, dag_id(symbol, data_type), day, service_env(services) | (env or {}),
                   conf=conf or None, timeout=420)  # fmt: skip
    return run, run.run()


def test_exchange_gap_day_succeeds_recorded_once(
    tmp_path: Path, airflow_db_template: Path, services: dict[str, Any], replay: Any
) -> None:
    replay.add_fault("gap", gap_start_ms=GAP_FIRST, gap_end_ms=GAP_END, symbol="BTCUSDT", interval="1m")
    db = services["db"]
    keys = None
    for attempt in range(2):  # a re-run stores the same documents and the same single ledger entry
        run, result = _run(tmp_path / str(attempt), airflow_db_template, services, "2020-01-02")
        assert result["state"] == "success", run.log_tail(200)
        report = result["xcoms"]["verify.return_value"]
        assert (report["count"], report["expected_count"], report["problems"]) == (1085, 1085, [])
        (gap,) = report["gaps"]
        assert (gap["first"], gap["last"], gap["count"]) == (GAP_FIRST, GAP_END - 60_000, 355)
        assert gap["confirmed_by"] == "rest_range"
        assert "exchange gap** 2020-01-02 11:35-17:29 UTC (355 candles)" in report["note"]
        outcome = result["xcoms"]["await_outcome.return_value"]
        assert [(g["first"], g["count"]) for g in outcome["gaps"]] == [(GAP_FIRST, 355)]  # the loader's event
        assert db.collection(COLLECTION).count() == 1085
        assert db.collection(GAP_COLLECTION).count() == 1
        ledger = db.collection(GAP_COLLECTION).get(f"BTCUSDT_api_candles_1m_{GAP_FIRST}")
        assert (ledger["first"], ledger["last"], ledger["count"]) == (GAP_FIRST, GAP_END - 60_000, 355)
        assert ledger["dag_id"] == DAG_1M and ledger["run_id"] == result["run_id"]
        stored = sorted(d["_key"] for d in db.collection(COLLECTION).all())
        keys = keys or stored
        assert stored == keys and len(keys) == 1085


def test_gaps_fail_names_the_range(
    tmp_path: Path, airflow_db_template: Path, services: dict[str, Any], replay: Any
) -> None:
    replay.add_fault("gap", gap_start_ms=GAP_FIRST, gap_end_ms=GAP_END, symbol="BTCUSDT", interval="1m")
    run, result = _run(tmp_path, airflow_db_template, services, "2020-01-02", gaps="fail")
    assert result["state"] == "failed", run.log_tail(200)
    outcome = result["xcoms"]["await_outcome.outcome"]
    assert "2020-01-02 11:35-17:29 UTC (355 candles)" in outcome["message"]
    assert "GAPS=fail" in outcome["message"]
    assert services["db"].has_collection(GAP_COLLECTION) is False  # nothing recorded as accepted


def test_archive_lacking_rows_is_repaired_from_rest(
    tmp_path: Path, airflow_db_template: Path, services: dict[str, Any], replay: Any
) -> None:
    a = ms("2020-01-02T08:00:00")
    replay.add_fault(
        "gap", path_prefix="/data/", gap_start_ms=a, gap_end_ms=a + 3_600_000, symbol="BTCUSDT", interval="1m"
    )
    run, result = _run(tmp_path, airflow_db_template, services, "2020-01-02")
    assert result["state"] == "success", run.log_tail(200)
    report = result["xcoms"]["verify.return_value"]
    assert (report["count"], report["gaps"]) == (1440, [])
    assert "repaired from REST** 2020-01-02 08:00-08:59 UTC (60 candles)" in report["note"]
    assert services["db"].collection(COLLECTION).count() == 1440


def test_window_before_listing_creates_nothing(
    tmp_path: Path, airflow_db_template: Path, services: dict[str, Any], replay: Any
) -> None:
    replay.add_fault("listing", symbol="BTCUSDT", listed_at_ms=ms("2020-01-03T00:00:00"))
    run, result = _run(tmp_path, airflow_db_template, services, "2020-01-02")
    assert result["state"] == "success", run.log_tail(200)
    states = result["states"]
    assert states["create_topic"] == "skipped"
    assert {states[t] for t in ("run_loader", "run_sink", "await_outcome")} == {"skipped"}
    assert states["verify"] == "success"
    plan = result["xcoms"]["plan.return_value"]
    assert plan["skip_reason"] == "before listing, first candle 2020-01-03T00:00:00Z"
    report = result["xcoms"]["verify.return_value"]
    assert report["count"] == 0 and "before listing, first candle 2020-01-03T00:00:00Z" in report["note"]
    assert plan["data_topic"] not in _topics(services["kafka"])
    assert not services["db"].has_collection(COLLECTION)
    assert "loader started" not in run.log()


def test_window_crossing_listing_loads_from_the_first_candle(
    tmp_path: Path, airflow_db_template: Path, services: dict[str, Any], replay: Any
) -> None:
    listed = ms("2020-01-02T06:00:00")
    replay.add_fault("listing", symbol="BTCUSDT", listed_at_ms=listed)
    run, result = _run(tmp_path, airflow_db_template, services, "2020-01-02")
    assert result["state"] == "success", run.log_tail(200)
    plan = result["xcoms"]["plan.return_value"]
    assert plan["time_range"] == "2020-01-02T06:00:00Z/2020-01-03T00:00:00Z"
    assert plan["collection"] == COLLECTION  # names keep the window's day
    report = result["xcoms"]["verify.return_value"]
    assert (report["count"], report["first"], report["gaps"]) == (1080, listed, [])
    assert "loaded from the first candle 2020-01-02T06:00:00Z" in report["note"]


def test_window_after_the_symbol_stopped_trading_creates_nothing(
    tmp_path: Path, airflow_db_template: Path, services: dict[str, Any], replay: Any
) -> None:
    """exchangeInfo status BREAK since 2020-01-02: that day succeeds with 0 records and the reason."""
    replay.add_fault("listing", symbol="BTCUSDT", listed_at_ms=JAN2 - 86_400_000, delisted_at_ms=JAN2)
    run, result = _run(tmp_path, airflow_db_template, services, "2020-01-02")
    assert result["state"] == "success", run.log_tail(200)
    states = result["states"]
    assert {states[t] for t in ("create_topic", "run_loader", "run_sink", "await_outcome")} == {"skipped"}
    reason = "after BTCUSDT stopped trading (status BREAK), last candle 2020-01-01T23:59:00Z"
    plan = result["xcoms"]["plan.return_value"]
    assert plan["skip_reason"] == reason
    report = result["xcoms"]["verify.return_value"]
    assert (report["count"], report["expected_count"], report["problems"]) == (0, 0, [])
    assert f"**0 records**: {reason}" in report["note"]
    assert plan["data_topic"] not in _topics(services["kafka"])
    assert not services["db"].has_collection(COLLECTION)
    assert "loader started" not in run.log()


FIRST_TRADE, TRADES_OF_DAY = 480_537_903, 105_280  # BTCUSD_PERP 2026-05-08, ids contiguous in the file
REPAIRED = (FIRST_TRADE + 500, FIRST_TRADE + 549)  # missing in the archive file only
EXCHANGE_GAP = (FIRST_TRADE + 70_000, FIRST_TRADE + 70_049)  # missing in the archive and on REST (fromId)


def test_aggtrades_day_with_id_holes_rest_fills_one_and_records_the_other(
    tmp_path: Path, airflow_db_template: Path, services: dict[str, Any], replay: Any
) -> None:
    replay.add_fault("trade_gap", path_prefix="/data/", first_id=REPAIRED[0], last_id=REPAIRED[1])
    replay.add_fault("trade_gap", first_id=EXCHANGE_GAP[0], last_id=EXCHANGE_GAP[1])
    archive = {"STREAMFORGE_BINANCE_ARCHIVE_URL": replay.futures_cm_archive_url}
    run, result = _run(tmp_path, airflow_db_template, services, "2026-05-08", symbol="BTCUSD_PERP",
                       data_type="api_trades", env=archive)  # fmt: skip
    assert result["state"] == "success", run.log_tail(200)
    stored = TRADES_OF_DAY - 50
    report = result["xcoms"]["verify.return_value"]
    assert (report["count"], report["expected_count"], report["problems"]) == (stored, stored, [])
    assert (report["first"], report["last"]) == (FIRST_TRADE, FIRST_TRADE + TRADES_OF_DAY - 1)
    (gap,) = report["gaps"]
    assert (gap["first"], gap["last"], gap["count"], gap["unit"]) == (*EXCHANGE_GAP, 50, "trade_id")
    assert gap["confirmed_by"] == "rest_from_id"
    (repair,) = report["repairs"]
    assert (repair["first"], repair["last"], repair["count"]) == (*REPAIRED, 50)
    assert f"**repaired from REST** trade ids {REPAIRED[0]}-{REPAIRED[1]} (50 aggTrades)" in report["note"]
    assert f"**exchange gap** trade ids {EXCHANGE_GAP[0]}-{EXCHANGE_GAP[1]} (50 aggTrades)" in report["note"]

    db = services["db"]
    trades = db.collection(collection_name("BTCUSD_PERP", "api_trades", datetime(2026, 5, 8, tzinfo=UTC)))
    assert trades.count() == stored
    filled = [f"BTCUSD_PERP_{i}" for i in range(REPAIRED[0], REPAIRED[1] + 1)]
    assert len([d for d in trades.get_many(filled) if d]) == 50  # every id REST had is stored
    lacking = [f"BTCUSD_PERP_{i}" for i in range(EXCHANGE_GAP[0], EXCHANGE_GAP[1] + 1)]
    assert [d for d in trades.get_many(lacking) if d] == []
    ledger = db.collection(GAP_COLLECTION).get(f"BTCUSD_PERP_api_trades_{EXCHANGE_GAP[0]}")
    assert (ledger["first"], ledger["last"], ledger["count"], ledger["confirmed_by"]) == (*EXCHANGE_GAP, 50,
                                                                                        "rest_from_id")  # fmt: skip
    assert db.collection(GAP_COLLECTION).count() == 1  # a repair is not a gap
