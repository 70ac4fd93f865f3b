"""A run triggered through REST with `conf` loads exactly that window; its XComs are readable."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from streamforge.stack import local as sf
from tests.airflow.conftest import DAG_1M, RUN_TIMEOUT, SOURCES, Scenario

pytestmark = pytest.mark.airflow


@pytest.mark.parametrize("source", SOURCES)
def test_triggered_run_with_conf_succeeds(
    source: str, scenario: Scenario, airflow_api: httpx.Client, airflow_timer: Callable[[str], float]
) -> None:
    run_id = scenario.manual[source]
    run = sf.wait_for_run(airflow_api, DAG_1M, run_id, timeout=RUN_TIMEOUT)
    airflow_timer(f"wait for the {source} run")
    assert run["state"] == "success", sf.task_states(airflow_api, DAG_1M, run_id)
    assert run["conf"]["source"] == source and run["run_type"] == "manual"
    assert run["logical_date"] is None  # the window comes from conf alone

    outcome = sf.xcom(airflow_api, DAG_1M, run_id, "await_outcome")
    assert outcome["success"] is True
    assert outcome["loader_records"] == outcome["sink_records"] == 1440

    report = sf.xcom(airflow_api, DAG_1M, run_id, "verify")
    assert report["collection"] == "btcusdt_api_candles_1m_2020_01_02"
    assert report["window"] == "2020-01-02T00:00:00Z/2020-01-03T00:00:00Z"
    assert (report["count"], report["expected_count"], report["problems"]) == (1440, 1440, [])
    assert (report["first"], report["last"]) == (1577923200000, 1578009540000)

    plan = sf.xcom(airflow_api, DAG_1M, run_id, "plan")
    assert plan["source"] == source and plan["env"]["loader"]["LOADER_SOURCE"] == source
