"""Default windows: what Airflow 3.3 gives scheduled vs manual runs, and what `plan` loads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pendulum
import pytest

from streamforge.contracts.config import TimeRange
from streamforge.contracts.names import DataType
from streamforge.orchestration.window import WindowError, default_window, resolve_window
from tests.dags.helpers import DAG_1M

DAY = datetime(2024, 8, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CANDLES_1M = DataType.parse("api_candles_1m")
TRADES = DataType.parse("api_trades")


@pytest.fixture(scope="module")
def serialized_dag(dagbag):  # type: ignore[no-untyped-def]
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dagbag.dags[DAG_1M]))


def test_airflow_gives_manual_runs_the_day_before_and_plan_corrects_it(serialized_dag) -> None:  # type: ignore[no-untyped-def]
    """The measured behaviour the default window is built around (see window.py)."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
    from airflow.timetables.base import TimeRestriction

    timetable = serialized_dag.timetable
    assert type(timetable).__name__ == "CronDataIntervalTimetable"
    logical = pendulum.datetime(2024, 8, 1, tz="UTC")

    # A scheduled (or backfill) run with logical date 2024-08-01 covers 2024-08-01.
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=TimeRestriction(earliest=logical, latest=None, catchup=True)
    )
    assert (info.logical_date, info.data_interval.start, info.data_interval.end) == (
        logical,
        logical,
        logical + timedelta(days=1),
    )

    # A REST trigger (POST /api/v2/dags/{id}/dagRuns) with the same logical date: the day BEFORE.
    rest = TriggerDAGRunPostBody(dag_run_id="manual_probe", logical_date=logical).validate_context(serialized_dag)
    assert (rest["data_interval"].start, rest["data_interval"].end) == (logical - timedelta(days=1), logical)
    # dag.test() infers the same way.
    assert timetable.infer_manual_data_interval(run_after=logical) == rest["data_interval"]

    # `plan`'s default window is the day of the logical date in both cases.
    expected = TimeRange(start=DAY, end=DAY + timedelta(days=1))
    assert default_window("0 0 * * *", info.logical_date, info.run_after) == expected
    assert default_window("0 0 * * *", rest["logical_date"], rest["run_after"]) == expected


def test_manual_run_now_loads_the_last_complete_day() -> None:
    now = datetime(2026, 11, 28, 14, 3, 7, tzinfo=UTC)
    window = default_window("0 0 * * *", now, now)
    assert (window.start, window.end) == (datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC))


def test_run_without_logical_date_uses_run_after() -> None:
    window = default_window("0 0 * * *", None, datetime(2024, 8, 2, 0, 5, tzinfo=UTC))
    assert window == TimeRange(start=DAY, end=DAY + timedelta(days=1))


def test_other_grids() -> None:
    hourly = default_window("0 * * * *", datetime(2024, 8, 1, 6, tzinfo=UTC), NOW)
    assert (hourly.start, hourly.end) == (datetime(2024, 8, 1, 6, tzinfo=UTC), datetime(2024, 8, 1, 7, tzinfo=UTC))


def test_params_window() -> None:
    default = default_window("0 0 * * *", DAY, NOW)
    assert resolve_window(None, None, default, CANDLES_1M, NOW) == default
    window = resolve_window("2024-08-01T06:00:00Z", "2024-08-01T12:00:00+00:00", default, CANDLES_1M, NOW)
    assert (window.start, window.end) == (DAY + timedelta(hours=6), DAY + timedelta(hours=12))
    assert resolve_window("2024-08-01", "2024-08-03", default, CANDLES_1M, NOW).end == DAY + timedelta(days=2)


@pytest.mark.parametrize(
    ("start", "end", "data_type", "message"),
    [
        ("2024-08-02", "2024-08-01", CANDLES_1M, "must be after start"),
        ("2024-08-01", "2024-08-01", CANDLES_1M, "set `end` later than `start`"),
        ("2025-12-31", "2026-01-02", CANDLES_1M, "ends in the future"),
        ("2024-08-01", "2025-08-03", CANDLES_1M, "more than the 366 day(s) one api_candles_1m run may load"),
        ("2024-08-01", "2024-08-03", TRADES, "spans 2 day(s), more than the 1 day(s) one api_trades run may load"),
        ("2024-08-01", None, CANDLES_1M, "`start` is set but `end` is not"),
    ],
)
def test_params_window_refused_with_what_to_fix(start: str, end: str | None, data_type: DataType, message: str) -> None:
    with pytest.raises(WindowError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_window(start, end, default_window("0 0 * * *", DAY, NOW), data_type, NOW)
