"""Month-sized runs: catalog `history.window: month` adds `{dag_id}__monthly` (orchestration/monthly.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from streamforge.contracts.config import LoaderSettings, SinkSettings
from streamforge.orchestration.catalog import CatalogError, DagSpec, HistoryWindow, Role, parse_catalog
from streamforge.orchestration.monthly import MONTHLY_CRON, is_monthly, monthly_dag_id
from streamforge.orchestration.plan import PlanError, RunPlan, make_plan
from tests.dags.helpers import DAG_1M, catalog_data
from tests.dags.test_plan import DEFAULT_PARAMS, NOW

AUG1 = datetime(2024, 8, 1, tzinfo=UTC)
MONTHLY_1M = monthly_dag_id(DAG_1M)


def specs(history: dict[str, Any] | None, types: tuple[str, ...] = ("api_candles_1m",)) -> dict[str, DagSpec]:
    entry: dict[str, Any] = {"name": "hist", "symbols": ["BTCUSDT"], "types": list(types)}
    if history is not None:
        entry["overrides"] = {"history": history}
    return {s.dag_id: s for s in parse_catalog(catalog_data([entry]), environ={}).dags}


def plan(spec: DagSpec, logical: datetime = AUG1, **params: Any) -> RunPlan:
    return make_plan(
        spec,
        run_id="backfill__x",
        attempt=1,
        logical_date=logical,
        run_after=NOW,
        params=DEFAULT_PARAMS | params,
        now=NOW,
    )


def test_month_history_adds_the_monthly_dag() -> None:
    assert list(specs(None)) == [DAG_1M]
    assert list(specs({"since": "2020-01-01"})) == [DAG_1M]  # window: day
    found = specs({"since": "2017-08-17", "window": "month"})
    assert list(found) == [DAG_1M, MONTHLY_1M]
    daily, monthly = found[DAG_1M], found[MONTHLY_1M]
    assert not is_monthly(daily) and is_monthly(monthly) and monthly.run_window is HistoryWindow.MONTH
    assert (daily.settings.schedule, monthly.settings.schedule) == ("0 0 * * *", MONTHLY_CRON)
    # Airflow runs nothing before start_date: the monthly DAG starts with the history's first month.
    assert str(monthly.settings.start_date) == "2017-08-01"
    assert monthly.settings.model_dump(exclude={"schedule", "start_date"}) == daily.settings.model_dump(
        exclude={"schedule", "start_date"}
    )
    with pytest.raises(CatalogError, match=r"history\.window: Input should be 'day' or 'month'"):
        specs({"since": "2020-01-01", "window": "week"})


def test_a_monthly_run_loads_its_calendar_month_into_each_day_collection() -> None:
    monthly = specs({"since": "2017-08-17", "window": "month"})[MONTHLY_1M]
    p = plan(monthly)
    assert p.time_range == "2024-08-01T00:00:00Z/2024-09-01T00:00:00Z"
    assert p.per_day and p.env[Role.SINK]["COLLECTION_NAME"] == ""
    assert [part.collection for part in p.parts][:2] == [
        "btcusdt_api_candles_1m_2024_08_01",
        "btcusdt_api_candles_1m_2024_08_02",
    ]
    assert len(p.parts) == 31
    assert p.queue_id.startswith("wf-btcusdt-api_candles_1m-20240801-") and p.dag_id == MONTHLY_1M
    # The workers accept what plan renders (the sink routes per day inside TIME_RANGE).
    sink = SinkSettings.model_validate({k.lower(): v for k, v in (_cluster() | p.env[Role.SINK]).items()})
    assert sink.collection_name is None and sink.time_range is not None
    LoaderSettings.model_validate({k.lower(): v for k, v in (_cluster() | p.env[Role.LOADER]).items()})
    # February of a leap year, from a manual run's logical date inside it: the month before, as Airflow infers.
    assert plan(monthly, datetime(2024, 3, 1, tzinfo=UTC)).time_range == "2024-03-01T00:00:00Z/2024-04-01T00:00:00Z"
    assert (
        plan(monthly, datetime(2024, 3, 15, 12, tzinfo=UTC)).time_range == "2024-02-01T00:00:00Z/2024-03-01T00:00:00Z"
    )


def test_window_limits_follow_the_dag_kind() -> None:
    found = specs({"since": "2017-08-17", "window": "month"}, types=("api_trades",))
    daily, monthly = found["streamforge__btcusdt__api_trades"], found["streamforge__btcusdt__api_trades__monthly"]
    assert plan(monthly).time_range == "2024-08-01T00:00:00Z/2024-09-01T00:00:00Z"
    with pytest.raises(PlanError, match="spans 2 day\\(s\\), more than the 1 day\\(s\\) one api_trades run may load"):
        plan(daily, start="2024-08-01", end="2024-08-03")
    with pytest.raises(PlanError, match="spans 32 day\\(s\\), more than the 31 day\\(s\\)"):
        plan(monthly, start="2024-08-01", end="2024-09-02")


def test_a_daily_run_of_one_day_keeps_its_collection_and_longer_windows_route_per_day() -> None:
    daily = specs(None)[DAG_1M]
    one = plan(daily)
    assert not one.per_day and one.env[Role.SINK]["COLLECTION_NAME"] == "btcusdt_api_candles_1m_2024_08_01"
    assert [p.collection for p in one.parts] == ["btcusdt_api_candles_1m_2024_08_01"]
    three = plan(daily, start="2024-08-01", end="2024-08-04")
    assert three.per_day and [p.collection for p in three.parts] == [
        f"btcusdt_api_candles_1m_2024_08_0{d}" for d in (1, 2, 3)
    ]


def test_the_monthly_dag_has_the_daily_tasks_and_a_monthly_timetable() -> None:
    from streamforge.orchestration.factory import build_dag

    found = specs({"since": "2017-08-17", "window": "month"})
    daily, monthly = build_dag(found[DAG_1M]), build_dag(found[MONTHLY_1M])
    assert monthly.dag_id == MONTHLY_1M and set(monthly.task_ids) == set(daily.task_ids)
    assert type(monthly.timetable).__name__ == "CronDataIntervalTimetable"
    assert (monthly.timetable.expression, str(monthly.timetable.timezone)) == ("0 0 1 * *", "UTC")
    assert monthly.start_date == datetime(2017, 8, 1, tzinfo=UTC) and monthly.catchup is False
    assert monthly.dag_display_name.endswith("· monthly")


def _cluster() -> dict[str, str]:
    return {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "ARANGO_URL": "http://a:8529"}
