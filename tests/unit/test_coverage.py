"""Coverage states, run windows and the sweeper's plan (orchestration/coverage.py, sweeper.py; pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from streamforge.contracts.gaps import ConfirmedBy, Gap, ListingInfo
from streamforge.contracts.names import DataType, Layout
from streamforge.orchestration.coverage import (
    DayCoverage,
    DayState,
    History,
    PipelineCoverage,
    RunRef,
    Stored,
    classify,
    latest_runs,
    run_ref,
)
from streamforge.orchestration.sweeper import plan_sweep
from streamforge.ui.heatmap import render_page

M1 = DataType.parse("api_candles_1m")
TRADES = DataType.parse("api_trades")
DAY = date(2020, 1, 2)
MIDNIGHT_MS = int(datetime(2020, 1, 2, tzinfo=UTC).timestamp() * 1000)


def _run(state: str, start: date = DAY, days: int = 1, started_h: int = 0, run_id: str | None = None) -> RunRef:
    begin = datetime.combine(start, datetime.min.time(), UTC)
    return RunRef(dag_id="d", run_id=run_id or f"r-{state}-{started_h}", state=state, start=begin,
                  end=begin + timedelta(days=days), started=begin + timedelta(days=days, hours=started_h))  # fmt: skip


def _gap(first_ms: int, count: int) -> Gap:
    last = first_ms + (count - 1) * 60_000
    return Gap(symbol="BTCUSDT", data_type="api_candles_1m", unit="open_time_ms", first=first_ms, last=last,
               count=count, confirmed_by=ConfirmedBy.BOTH_SOURCES_EMPTY)  # fmt: skip


@pytest.mark.parametrize(
    ("stored", "gaps", "run", "state"),
    [
        (1440, [], _run("success"), DayState.COMPLETE),
        (1440, [], None, DayState.COMPLETE),  # loaded by anyone: the data decide
        (1440, [], _run("failed"), DayState.COMPLETE),
        (1430, [_gap(MIDNIGHT_MS + 3_600_000, 10)], _run("success"), DayState.WITH_GAPS),
        (1430, [], _run("success"), DayState.PARTIAL),
        (700, [], _run("failed"), DayState.FAILED),
        (0, [], _run("failed"), DayState.FAILED),
        (0, [], None, DayState.MISSING),
        (0, [], _run("running"), DayState.MISSING),
    ],
)
def test_candle_day_states(stored: int, gaps: list[Gap], run: RunRef | None, state: DayState) -> None:
    day = classify(DAY, M1, Stored(count=stored), gaps, None, run)
    assert day.state is state
    assert day.expected == 1440 - sum(g.count for g in gaps)


def test_days_outside_the_listing_are_not_listed_and_the_listing_day_expects_from_the_first_candle() -> None:
    listed_at = MIDNIGHT_MS + 12 * 3_600_000
    listing = ListingInfo(symbol="BTCUSDT", data_type="api_candles_1m", first_open_time_ms=listed_at, learned_at=0)
    before = classify(date(2020, 1, 1), M1, Stored(count=0), [], listing, None)
    assert (before.state, before.expected) == (DayState.NOT_LISTED, None)
    first = classify(DAY, M1, Stored(count=720), [], listing, None)
    assert (first.state, first.expected) == (DayState.COMPLETE, 720)
    stopped = ListingInfo(symbol="BTCUSDT", data_type="api_candles_1m", first_open_time_ms=0, status="BREAK",
                          last_open_time_ms=MIDNIGHT_MS - 60_000, learned_at=0)  # fmt: skip
    assert classify(DAY, M1, Stored(count=0), [], stopped, None).state is DayState.NOT_LISTED


def test_trade_days_are_complete_when_ids_are_contiguous_apart_from_recorded_gaps() -> None:
    gap = Gap(symbol="BTCUSDT", data_type="api_trades", unit="trade_id", first=150, last=159, count=10,
              confirmed_by=ConfirmedBy.REST_FROM_ID)  # fmt: skip
    assert classify(DAY, TRADES, Stored(count=100, first=100, last=199), [], None, None).state is DayState.COMPLETE
    assert classify(DAY, TRADES, Stored(count=90, first=100, last=199), [gap], None, None).state is DayState.WITH_GAPS
    assert classify(DAY, TRADES, Stored(count=90, first=100, last=199), [], None, None).state is DayState.PARTIAL
    failed = classify(DAY, TRADES, Stored(count=100, first=100, last=199), [], None, _run("failed"))
    assert failed.state is DayState.FAILED


def test_run_windows_follow_plan_rules() -> None:
    backfill = {"dag_id": "d", "dag_run_id": "backfill__2020-01-02T00:00:00+00:00", "state": "success",
                "logical_date": "2020-01-02T00:00:00Z", "run_after": "2020-01-03T00:00:00Z", "conf": {}}  # fmt: skip
    ref = run_ref(backfill, "0 0 * * *")
    assert ref is not None and (ref.start.date(), ref.end.date()) == (DAY, date(2020, 1, 3))
    manual = {**backfill, "dag_run_id": "manual", "conf": {"start": "2020-01-01", "end": "2020-01-03"}}
    ref = run_ref(manual, "0 0 * * *")
    assert ref is not None and ref.covers(date(2020, 1, 1)) and ref.covers(DAY) and not ref.covers(date(2020, 1, 3))
    monthly = {**backfill, "dag_run_id": "m", "logical_date": "2020-01-01T00:00:00Z"}
    ref = run_ref(monthly, "0 0 1 * *")
    assert ref is not None and (ref.start.date(), ref.end.date()) == (date(2020, 1, 1), date(2020, 2, 1))
    assert run_ref({**backfill, "conf": {"start": "2020-01-03", "end": "2020-01-02"}}, "0 0 * * *") is None


def test_the_latest_started_run_covering_a_day_decides() -> None:
    failed, retried = _run("failed", started_h=1), _run("success", started_h=5)
    month = _run("queued", start=date(2020, 1, 1), days=31, run_id="monthly")
    month = month.model_copy(update={"started": None})  # not started yet: the newest
    assert latest_runs([retried, failed], [DAY])[DAY] is retried
    assert latest_runs([failed, retried, month], [DAY, date(2020, 1, 20)]) == {DAY: month, date(2020, 1, 20): month}


def test_history_days_end_before_today_or_at_until() -> None:
    assert History(since=date(2020, 1, 1), until=date(2020, 1, 3)).days(date(2024, 1, 1)) == [
        date(2020, 1, 1), date(2020, 1, 2), date(2020, 1, 3)]  # fmt: skip
    assert History(since=date(2020, 1, 1)).days(date(2020, 1, 3)) == [date(2020, 1, 1), date(2020, 1, 2)]


def _coverage(
    states: dict[date, DayState], monthly: bool = False, running: set[date] = frozenset()
) -> PipelineCoverage:  # type: ignore[assignment]
    days = [
        DayCoverage(day=d, state=s, stored=0, expected=1440, run=_run("running", start=d) if d in running else None)
        for d, s in sorted(states.items())
    ]
    return PipelineCoverage(dag_id="dag", monthly_dag_id="dag__monthly" if monthly else None, symbol="BTCUSDT",
                            data_type="api_candles_1m", collection_layout=Layout.DAILY, days=days)  # fmt: skip


def _days(first: date, n: int, state: DayState) -> dict[date, DayState]:
    return {first + timedelta(days=i): state for i in range(n)}


def test_sweep_schedules_one_backfill_of_the_first_consecutive_days_needing_a_load() -> None:
    cov = _coverage({**_days(date(2020, 1, 1), 5, DayState.COMPLETE), DAY: DayState.FAILED,
                     date(2020, 1, 3): DayState.MISSING, date(2020, 1, 5): DayState.PARTIAL})  # fmt: skip
    report = plan_sweep([cov], busy=set(), budget=10)
    assert [(b.dag_id, b.first, b.last, b.runs) for b in report.scheduled] == [("dag", DAY, date(2020, 1, 3), 2)]
    assert report.scheduled[0].reason == "1 failed, 1 missing"


def test_sweep_is_idempotent_while_runs_or_a_backfill_are_going() -> None:
    states = {**_days(date(2020, 1, 1), 3, DayState.COMPLETE), DAY: DayState.FAILED}
    assert plan_sweep([_coverage(states, running={DAY})], busy=set(), budget=10).scheduled == []
    busy = plan_sweep([_coverage(states)], busy={"dag"}, budget=10)
    assert busy.scheduled == [] and "still running" in busy.skipped[0]
    nothing = plan_sweep([_coverage(_days(date(2020, 1, 1), 3, DayState.COMPLETE))], busy=set(), budget=10)
    assert nothing.scheduled == [] and nothing.skipped == [] and "nothing to load" in nothing.note()


def test_whole_months_go_to_the_monthly_dag_and_the_budget_caps_runs() -> None:
    states = {**_days(date(2020, 1, 1), 31, DayState.MISSING), **_days(date(2020, 2, 1), 29, DayState.MISSING),
              **_days(date(2020, 3, 1), 31, DayState.COMPLETE), date(2020, 3, 10): DayState.FAILED}  # fmt: skip
    report = plan_sweep([_coverage(states, monthly=True)], busy=set(), budget=10)
    assert [(b.dag_id, b.first, b.last, b.runs) for b in report.scheduled] == [
        ("dag__monthly", date(2020, 1, 1), date(2020, 2, 1), 2),
        ("dag", date(2020, 3, 10), date(2020, 3, 10), 1),
    ]
    without_monthly = plan_sweep([_coverage(states)], busy=set(), budget=10)
    assert [(b.first, b.last, b.runs) for b in without_monthly.scheduled] == [(date(2020, 1, 1), date(2020, 1, 10), 10)]


def test_the_page_carries_every_day_with_its_numbers_and_run_link() -> None:
    cov = _coverage({date(2020, 1, 1): DayState.COMPLETE, DAY: DayState.FAILED}, running=set())
    failed_day = cov.days[1].model_copy(update={"run": _run("failed", run_id="backfill__x"), "stored": 3})
    cov = cov.model_copy(update={"days": [cov.days[0], failed_day]})
    html = render_page([cov], "http://af:8080")
    assert 'data-day="2020-01-02" data-state="failed" data-stored="3" data-expected="1440"' in html
    assert 'href="http://af:8080/dags/d/runs/backfill__x"' in html
    assert 'href="http://af:8080/dags/dag/runs"' in html  # a day without a run links to the DAG's runs
