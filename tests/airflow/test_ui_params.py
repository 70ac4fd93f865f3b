"""The UI trigger form is built from `GET /api/v2/dags/{id}/details` -> `params`."""

from __future__ import annotations

import httpx
import pytest

from streamforge.stack import local as sf
from tests.airflow.conftest import DAG_1M

pytestmark = pytest.mark.airflow


def test_details_expose_the_params_schema(airflow_stack, airflow_api: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    airflow_stack.airflow.wait_for_dag(DAG_1M)
    details = sf.check(airflow_api.get(f"/api/v2/dags/{DAG_1M}/details"))
    params = details["params"]
    assert set(params) == {"start", "end", "source", "gaps", "batch_size", "partitions", "timeout_minutes"}
    assert details["dag_display_name"] == "BTCUSDT · candles 1m"

    assert params["source"]["value"] == "auto"
    assert params["source"]["schema"]["enum"] == ["auto", "rest", "archive"]
    assert set(params["source"]["schema"]["values_display"]) == {"auto", "rest", "archive"}
    for name in ("start", "end"):
        schema = params[name]["schema"]
        assert params[name]["value"] is None
        # What the form reads to render a date/time picker (empty = null) ...
        assert (schema["type"], schema["format"]) == (["null", "string"], "date-time")
        # ... and what validation uses: a date or a date-time (draft-07 ignores $ref's siblings).
        window = schema["definitions"]["window"]["anyOf"]
        assert {alt.get("format") for alt in window if alt.get("type") == "string"} == {"date", "date-time"}
        assert {"type": "null"} in window
        assert params[name]["description"]
    for name in ("batch_size", "partitions", "timeout_minutes"):
        assert params[name]["schema"]["section"] == "Tuning"
    assert (params["batch_size"]["schema"]["minimum"], params["batch_size"]["schema"]["maximum"]) == (1, 1000)
    assert params["timeout_minutes"]["schema"]["maximum"] == 720
    assert params["partitions"]["value"] == 1

    assert details["timetable_summary"]  # a real data-interval schedule, so it is backfillable
    assert details["max_active_runs"] == 4
