"""Month-sized runs end to end (dag.test, local runner, real Kafka, ArangoDB test server, replay).

The real BTCUSDT 1h 2024-08 month (744 candles, shared/data): the `__monthly` DAG loads it from
the monthly archive into the 31 day collections; the daily DAG's runs of the same days store
identical documents under the same `_key`s; a wrong monthly .CHECKSUM fails the run clearly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.dags.test_e2e_local import DAG_1H, airflow_db_template, dag_test, service_env, services, webhook
from tests.workers.test_sink import dump

__all__ = ["airflow_db_template", "services", "webhook"]  # fixtures re-used from the e2e module

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

MONTHLY_1H = f"{DAG_1H}__monthly"
MONTH_ZIP = "/data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-08.zip"
DAYS = [f"2024-08-{d:02d}" for d in range(1, 32)]


def collection(day: str) -> str:
    return f"btcusdt_api_candles_1h_{day.replace('-', '_')}"


@pytest.fixture
def replay(services: dict[str, Any]) -> Any:
    server = services["binance"]
    server.clear_faults()
    server.reset_stats()
    yield server
    server.clear_faults()


def _catalog(tmp_path: Path) -> Path:
    from tests.dags.e2e import e2e_catalog

    tmp_path.mkdir(parents=True, exist_ok=True)
    history = {"since": "2024-08-01", "window": "month"}
    return e2e_catalog(tmp_path / "catalog.yaml", ["api_candles_1h"], history=history)


def test_a_month_by_the_monthly_dag_equals_the_same_days_by_the_daily_dag(
    tmp_path: Path, airflow_db_template: Path, services: dict[str, Any], replay: Any
) -> None:
    db, env, catalog = services["db"], service_env(services), _catalog(tmp_path)
    run = dag_test(tmp_path / "month", airflow_db_template, catalog, MONTHLY_1H, "2024-08-01", env)
    result = run.run()
    assert result["state"] == "success", run.log_tail(200)
    plan = result["xcoms"]["plan.return_value"]
    assert plan["time_range"] == "2024-08-01T00:00:00Z/2024-09-01T00:00:00Z" and plan["per_day"] is True
    report = result["xcoms"]["verify.return_value"]
    assert (report["count"], report["expected_count"], report["problems"]) == (744, 744, [])
    assert report["collection"] == f"{collection(DAYS[0])}..{collection(DAYS[-1])} (31 collections)"
    archive_files = {p for p in replay.stats()["requests"] if p.startswith("/data/")}
    assert archive_files == {MONTH_ZIP, MONTH_ZIP + ".CHECKSUM"}  # one monthly file, no daily ones
    monthly = {day: dump(db, collection(day)) for day in DAYS}
    assert [len(docs) for docs in monthly.values()] == [24] * 31

    # The daily DAG, for the month's first and last day, after the monthly documents are gone.
    some = (DAYS[0], DAYS[-1])
    for day in some:
        db.delete_collection(collection(day))
    runs = [dag_test(tmp_path / day, airflow_db_template, catalog, DAG_1H, day, env).start() for day in some]
    for daily in runs:
        outcome = daily.wait()
        assert outcome["state"] == "success", daily.log_tail(200)
        assert outcome["xcoms"]["plan.return_value"]["per_day"] is False
    for day in some:
        assert dump(db, collection(day)) == monthly[day]


def test_monthly_checksum_mismatch_fails_the_run_naming_the_file(
    tmp_path: Path, airflow_db_template: Path, services: dict[str, Any], replay: Any
) -> None:
    replay.add_fault("bad_checksum", path_prefix="/data/spot/monthly/klines/BTCUSDT/1h/")
    run = dag_test(tmp_path, airflow_db_template, _catalog(tmp_path), MONTHLY_1H, "2024-08-01", service_env(services))
    result = run.run()
    assert result["state"] == "failed", run.log_tail(200)
    assert result["states"]["run_loader"] == "failed" and result["states"]["verify"] != "success"
    message = result["xcoms"]["await_outcome.outcome"]["message"]
    assert "checksum mismatch for http://" in message and "/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-08.zip" in message
    assert ".CHECKSUM says sha256" in message
    assert not any(services["db"].has_collection(collection(day)) for day in DAYS)
