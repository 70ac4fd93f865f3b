"""Invalid `conf` is refused by the REST API (HTTP 400, the jsonschema message); no run starts.

What the JSON schema cannot express (end before start) is refused by `plan`, the first task.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from streamforge.stack import local as sf
from tests.airflow.conftest import DAG_1M, RUN_TIMEOUT, Scenario

pytestmark = pytest.mark.airflow

NOT_A_DATE = "is not valid under any of the given schemas"  # start/end: anyOf null | date | date-time
CASES = [
    pytest.param({"source": "binance"}, "'binance' is not one of ['auto', 'rest', 'archive']", id="unknown-source"),
    pytest.param({"start": "2020-13-45", "end": "2020-01-03"}, f"'2020-13-45' {NOT_A_DATE}", id="bad-date"),
    pytest.param({"start": "2020-01-02", "end": "yesterday"}, f"'yesterday' {NOT_A_DATE}", id="bad-end"),
    pytest.param({"batch_size": 0}, "0 is less than the minimum of 1", id="batch-size"),
]


@pytest.mark.parametrize(("conf", "message"), CASES)
def test_invalid_conf_is_refused(
    conf: dict[str, Any], message: str, airflow_stack, airflow_api: httpx.Client,  # type: ignore[no-untyped-def]
    airflow_timer: Callable[[str], float],
) -> None:  # fmt: skip
    airflow_stack.airflow.wait_for_dag(DAG_1M)
    before = airflow_api.get(f"/api/v2/dags/{DAG_1M}/dagRuns", params={"limit": 1}).json()["total_entries"]
    response = airflow_api.post(f"/api/v2/dags/{DAG_1M}/dagRuns", json={"logical_date": None, "conf": conf})
    airflow_timer("POST dagRuns")
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"], response.text
    after = airflow_api.get(f"/api/v2/dags/{DAG_1M}/dagRuns", params={"limit": 1}).json()["total_entries"]
    assert after == before  # refused before a run was created


def test_rest_api_needs_a_token(airflow_stack) -> None:  # type: ignore[no-untyped-def]
    response = httpx.post(f"{airflow_stack.airflow.url}/api/v2/dags/{DAG_1M}/dagRuns",
                          json={"logical_date": None, "conf": {}}, timeout=30)  # fmt: skip
    assert response.status_code == 401


def test_reversed_window_fails_in_plan_before_anything_is_created(
    scenario: Scenario, airflow_api: httpx.Client, airflow_timer: Callable[[str], float]
) -> None:
    run_id = scenario.reversed_window
    run = sf.wait_for_run(airflow_api, DAG_1M, run_id, timeout=RUN_TIMEOUT)
    airflow_timer("wait for the refused run")
    assert run["state"] == "failed"
    states = {task: state for (_, task), state in sf.task_states(airflow_api, DAG_1M, run_id).items()}
    assert states["plan"] == "failed"
    assert {states[t] for t in ("create_topic", "run_loader", "run_sink", "await_outcome", "verify")} == {
        "upstream_failed"
    }, states
    log = sf.check(airflow_api.get(f"/api/v2/dags/{DAG_1M}/dagRuns/{run_id}/taskInstances/plan/logs/1"))
    text = json.dumps(log["content"])  # structured log records
    assert "set `end` later than `start`" in text, text[-2000:]
