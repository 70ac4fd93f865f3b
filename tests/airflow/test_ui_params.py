"""The UI trigger form is built from `GET /api/v2/dags/{id}/details` -> `params`."""

from __future__ import annotations

import httpx
import pytest

from tests.airflow.conftest import DAG_1M
from streamforge.stack import local as sf

pytestmark = pytest.mark.airflow


def test_details_expose_the_params_schema(airflow_stack, airflow_api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    airflow_stack.airflow.wait_for_dag(DAG_1M)
    details = sf.check(airflow_api.get(f"/api/v2/dags/{DAG_1M}/details"))
    params = details["params"]
    assert set(params) == {"start", "end", "source", "batch_size", "partitions", "timeout_minutes"}

    assert params["source"]["value"] == "auto"
    assert params["source"]["schema"]["enum"] == ["auto", "rest", "archive"]
    for name in ("start", "end"):
        schema = params[name]["schema"]
        assert params[name]["value"] is None
        formats = {alt.get("format") for alt in schema["anyOf"] if alt.get("type") == "string"}
        assert formats == {"date", "date-time"}, schema
        assert {"type": "null"} in schema["anyOf"]
        assert params[name]["description"]
    assert (params["batch_size"]["schema"]["minimum"], params["batch_size"]["schema"]["maximum"]) == (1, 1000)
    assert params["timeout_minutes"]["schema"]["maximum"] == 720
    assert params["partitions"]["value"] == 1

    assert details["timetable_summary"]  # a real data-interval schedule, so it is backfillable
    assert details["max_active_runs"] == 4
