"""`POST /api/v2/backfills` for three days: three successful runs, three full collections."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from streamforge.contracts.names import collection_name
from streamforge.stack import local as sf
from streamforge.stack.local import LocalStack
from tests.airflow.conftest import BACKFILL_FROM, BACKFILL_TO, DAG_1M, RUN_TIMEOUT, Scenario

pytestmark = pytest.mark.airflow

DAYS = ("2020-01-01", "2020-01-02", "2020-01-03")


def test_backfill_loads_three_days(
    scenario: Scenario,
    airflow_stack: LocalStack,
    airflow_api: httpx.Client,
    airflow_timer: Callable[[str], float],
) -> None:
    assert scenario.backfill["dag_id"] == DAG_1M
    assert scenario.backfill["max_active_runs"] == 3
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        runs = sf.backfill_runs(airflow_api, DAG_1M, BACKFILL_FROM, BACKFILL_TO)
        if len(runs) == len(DAYS) and all(r["state"] in sf.TERMINAL_RUN_STATES for r in runs):
            break
        assert time.monotonic() < deadline, f"backfill not done: {[(r['dag_run_id'], r['state']) for r in runs]}"
        time.sleep(1)
    airflow_timer("wait for the 3 backfill runs")

    by_day = {r["logical_date"][:10]: r for r in runs}
    assert sorted(by_day) == list(DAYS)
    for day, run in by_day.items():
        assert run["state"] == "success", (day, sf.task_states(airflow_api, DAG_1M, run["dag_run_id"]))
        assert run["run_type"] == "backfill"
        assert run["data_interval_start"][:10] == day  # a backfill run's window is its data interval

    db = airflow_stack.arango
    assert db is not None
    database = db.db()
    for day in DAYS:
        name = collection_name("BTCUSDT", "api_candles_1m", datetime.fromisoformat(day).replace(tzinfo=UTC))
        assert database.has_collection(name), name
        collection = database.collection(name)
        assert collection.count() == 1440, name
        first = datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000
        assert collection.has(f"BTCUSDT_1m_{int(first)}")
        assert collection.has(f"BTCUSDT_1m_{int(first) + 1439 * 60_000}")

    listed = sf.check(airflow_api.get("/api/v2/backfills", params={"dag_id": DAG_1M}))["backfills"]
    assert scenario.backfill["id"] in [b["id"] for b in listed]
