"""Coverage: what history each pipeline holds, day by day, and how each day got there.

For every pipeline with declared history (catalog `history`) and every day from `since` to
the last complete day (or `until`):

* **expected** records — candles: the interval grid minus the exchange gaps recorded in the gap
  ledger (contracts/gaps.py); trades have no grid: their aggregate trade ids must be contiguous
  apart from recorded gaps. Days outside the listing (cached by `plan`, orchestration/listing.py)
  are not applicable.
* **stored** documents — `contracts.aql.WINDOW_SUMMARY` over the day's window, in the day's
  collection (layout `daily`) or the pipeline's one collection (layout `single`).
* **run** — the latest run of the daily DAG or its `__monthly` DAG whose window covers the day
  (Airflow REST API).

Each day gets one state (`DayState`); the CLI (`streamforge coverage`), the `streamforge__coverage`
DAG, the coverage page of the Airflow UI and the sweeper all read it from `measure` here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from streamforge.contracts.aql import GAPS_OF, WINDOW_SUMMARY, window_summary_bind_vars
from streamforge.contracts.config import TimeRange
from streamforge.contracts.gaps import GAP_COLLECTION, LISTING_COLLECTION, Gap, ListingInfo, listing_key
from streamforge.contracts.names import DataType, Kind, Layout, collection_name
from streamforge.orchestration.catalog import DagSpec, HistoryWindow
from streamforge.orchestration.monthly import MONTHLY_CRON, monthly_dag_id
from streamforge.orchestration.window import default_window

DAY_MS = 86_400_000
ACTIVE_RUN_STATES = frozenset({"queued", "running"})


class DayState(StrEnum):
    COMPLETE = "complete"
    WITH_GAPS = "with_gaps"  # complete apart from exchange gaps the ledger records
    PARTIAL = "partial"
    FAILED = "failed"
    MISSING = "missing"
    NOT_LISTED = "not_listed"  # before the listing, or after the symbol stopped trading

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


# What the sweeper loads again.
NEEDS_LOAD = frozenset({DayState.PARTIAL, DayState.FAILED, DayState.MISSING})


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunRef(_Frozen):
    """One DAG run and the window it loads."""

    dag_id: str
    run_id: str
    state: str | None
    start: datetime
    end: datetime
    started: datetime | None = None  # when it (last) started; None: not yet

    def covers(self, day: date) -> bool:
        begin = datetime.combine(day, datetime.min.time(), UTC)
        return self.start <= begin and begin + timedelta(days=1) <= self.end

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_RUN_STATES

    @property
    def ui_path(self) -> str:
        """The run's page in the Airflow UI, relative to its base URL."""
        from urllib.parse import quote

        return f"/dags/{quote(self.dag_id, safe='')}/runs/{quote(self.run_id, safe='')}"


class DayCoverage(_Frozen):
    day: date
    state: DayState
    stored: int
    expected: int | None  # None: no grid (trades) or not applicable
    gap_records: int = 0  # records the recorded exchange gaps of this day stand for
    run: RunRef | None = None

    @property
    def in_progress(self) -> bool:
        return self.run is not None and self.run.active


class PipelineCoverage(_Frozen):
    dag_id: str
    monthly_dag_id: str | None
    symbol: str
    data_type: str
    collection_layout: Layout
    days: list[DayCoverage]

    def count(self, state: DayState) -> int:
        return sum(1 for d in self.days if d.state is state)

    def totals(self) -> dict[str, int]:
        return {state.value: self.count(state) for state in DayState}

    def day(self, day: date) -> DayCoverage:
        for each in self.days:
            if each.day == day:
                return each
        raise KeyError(f"{day} is outside the history of {self.dag_id}")


# --- the catalog's history ------------------------------------------------------------------


class History(_Frozen):
    """The history a pipeline declares (catalog `history`): days `since`..`until` (inclusive)."""

    since: date
    until: date | None = None
    monthly: bool = False  # the factory builds `{dag_id}__monthly`

    def days(self, today: date) -> list[date]:
        """Every day of the history that has ended by `today` (UTC)."""
        last = min(self.until, today - timedelta(days=1)) if self.until else today - timedelta(days=1)
        return [self.since + timedelta(days=i) for i in range((last - self.since).days + 1)]


def declared_history(spec: DagSpec) -> History | None:
    """The entry's catalog `history`, or None when it declares none."""
    declared = spec.settings.history
    if declared is None:
        return None
    return History(since=declared.since, until=declared.until, monthly=declared.window is HistoryWindow.MONTH)


# --- runs -----------------------------------------------------------------------------------


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def run_ref(run: dict[str, Any], cron: str) -> RunRef | None:
    """A run of the REST API (`/api/v2/dags/{id}/dagRuns`) with the window `plan` gives it.

    The window follows plan's rules (orchestration/window.py): conf `start`/`end` when both are
    set, else the day (month) of the logical date. None for a run whose conf is not a window.
    """
    conf = run.get("conf") or {}
    try:
        if conf.get("start") and conf.get("end"):
            window = TimeRange.model_validate(TimeRange.parse(f"{conf['start']}/{conf['end']}"))
        else:
            after = _instant(run.get("run_after")) or _instant(run.get("queued_at"))
            assert after is not None
            window = default_window(cron, _instant(run.get("logical_date")), after)
    except (ValueError, AssertionError):  # plan refuses such a run: it loads nothing
        return None
    return RunRef(
        dag_id=run["dag_id"],
        run_id=run["dag_run_id"],
        state=run.get("state"),
        start=window.start,
        end=window.end,
        started=_instant(run.get("start_date")) or _instant(run.get("queued_at")) or _instant(run.get("run_after")),
    )


def latest_runs(runs: Iterable[RunRef], days: Sequence[date]) -> dict[date, RunRef]:
    """Per day, the run covering it that started last (not yet started counts as latest)."""
    far_future = datetime.max.replace(tzinfo=UTC)
    ordered = sorted(runs, key=lambda r: (r.started or far_future, r.run_id))
    latest: dict[date, RunRef] = {}
    wanted = set(days)
    for run in ordered:  # later runs overwrite earlier ones
        day = run.start.date()
        while datetime.combine(day, datetime.min.time(), UTC) < run.end:
            if day in wanted and run.covers(day):
                latest[day] = run
            day += timedelta(days=1)
    return latest


# --- one day --------------------------------------------------------------------------------


class Stored(_Frozen):
    """WINDOW_SUMMARY of one day."""

    count: int
    first: int | None = None
    last: int | None = None


def _day_ms(day: date) -> tuple[int, int]:
    start = int(datetime.combine(day, datetime.min.time(), UTC).timestamp() * 1000)
    return start, start + DAY_MS


def listed(day: date, listing: ListingInfo | None) -> bool:
    if listing is None:  # not learned yet: assume the symbol trades
        return True
    start, end = _day_ms(day)
    if listing.first_open_time_ms is None or end <= listing.first_open_time_ms:
        return False
    last = listing.last_open_time_ms
    return not (listing.status != "TRADING" and last is not None and start > last)


def classify(
    day: date,
    data_type: DataType,
    stored: Stored,
    gaps: Sequence[Gap],
    listing: ListingInfo | None,
    run: RunRef | None,
) -> DayCoverage:
    """The state of one day (pure). Data decide first; a failed run explains data that are not there."""
    start, end = _day_ms(day)
    if not listed(day, listing):
        return DayCoverage(day=day, state=DayState.NOT_LISTED, stored=stored.count, expected=None, run=run)
    expected: int | None
    if data_type.kind is Kind.CANDLES:
        assert data_type.interval is not None
        if listing is not None and listing.first_open_time_ms:
            start = max(start, listing.first_open_time_ms)
        grid = data_type.interval.open_times(start, end)
        in_gaps = sum(1 for t in grid if any(g.first <= t <= g.last for g in gaps))
        expected = len(grid) - in_gaps
        complete = stored.count == expected
    else:
        expected = None
        lo, hi = stored.first, stored.last
        in_gaps = 0
        if lo is not None and hi is not None:
            in_gaps = sum(max(0, min(g.last, hi) - max(g.first, lo) + 1) for g in gaps)
        contiguous = lo is not None and hi is not None and hi - lo + 1 == stored.count + in_gaps
        # Trades have no grid: contiguous ids are complete unless the last run says otherwise.
        complete = contiguous and (run is None or run.state == "success")
    if complete:
        state = DayState.WITH_GAPS if in_gaps else DayState.COMPLETE
    elif run is not None and run.state == "failed":
        state = DayState.FAILED
    elif stored.count:
        state = DayState.PARTIAL
    else:
        state = DayState.MISSING
    return DayCoverage(day=day, state=state, stored=stored.count, expected=expected, gap_records=in_gaps, run=run)


# --- ArangoDB -------------------------------------------------------------------------------


def stored_per_day(db: Any, spec: DagSpec, days: Sequence[date]) -> dict[date, Stored]:
    """WINDOW_SUMMARY per day (python-arango StandardDatabase); days without a collection hold 0."""
    data_type = spec.type
    layout = spec.settings.collection_layout
    existing = {c["name"] for c in db.collections()}
    result: dict[date, Stored] = {}
    for day in days:
        midnight = datetime.combine(day, datetime.min.time(), UTC)
        collection = collection_name(spec.symbol, spec.data_type, midnight, layout)
        if collection not in existing:
            result[day] = Stored(count=0)
            continue
        start, end = _day_ms(day)
        bind = window_summary_bind_vars(collection, data_type.time_field, data_type.id_field, start, end)
        row = next(iter(db.aql.execute(WINDOW_SUMMARY, bind_vars=bind)))
        result[day] = Stored.model_validate(row)
    return result


def recorded_gaps(db: Any, spec: DagSpec) -> list[Gap]:
    """The ledger's exchange gaps of this symbol x type."""
    if not db.has_collection(GAP_COLLECTION):
        return []
    rows = db.aql.execute(GAPS_OF, bind_vars={"@collection": GAP_COLLECTION, "symbol": spec.symbol,
                                               "data_type": spec.data_type})  # fmt: skip
    return [Gap.model_validate({k: v for k, v in row.items() if not k.startswith("_")}) for row in rows]


def cached_listing(db: Any, spec: DagSpec) -> ListingInfo | None:
    """The listing `plan` cached (coverage never asks the exchange)."""
    if not db.has_collection(LISTING_COLLECTION):
        return None
    doc = db.collection(LISTING_COLLECTION).get(listing_key(spec.symbol, spec.data_type))
    return None if doc is None else ListingInfo.model_validate({k: v for k, v in doc.items() if not k.startswith("_")})


def _gaps_of_day(gaps: Sequence[Gap], day: date, data_type: DataType, stored: Stored) -> list[Gap]:
    if data_type.kind is Kind.CANDLES:
        start, end = _day_ms(day)
        return [g for g in gaps if g.first < end and g.last >= start]
    if stored.first is None or stored.last is None:
        return []
    return [g for g in gaps if g.first <= stored.last and g.last >= stored.first]


# --- a pipeline -----------------------------------------------------------------------------


def measure(
    spec: DagSpec,
    history: History,
    db: Any,
    runs: Callable[[str], list[dict[str, Any]]],
    today: date | None = None,
) -> PipelineCoverage:
    """Coverage of one pipeline. `runs(dag_id)`: the REST API's runs of a DAG (AirflowApi.dag_runs)."""
    today = today or datetime.now(UTC).date()
    days = history.days(today)
    monthly = monthly_dag_id(spec.dag_id) if history.monthly else None
    refs = [r for run in runs(spec.dag_id) if (r := run_ref(run, spec.settings.window_cron))]
    if monthly:
        refs += [r for run in runs(monthly) if (r := run_ref(run, MONTHLY_CRON))]
    latest = latest_runs(refs, days)
    stored = stored_per_day(db, spec, days)
    gaps = recorded_gaps(db, spec)
    listing = cached_listing(db, spec)
    coverage = [
        classify(day, spec.type, stored[day], _gaps_of_day(gaps, day, spec.type, stored[day]), listing, latest.get(day))
        for day in days
    ]
    return PipelineCoverage(
        dag_id=spec.dag_id,
        monthly_dag_id=monthly,
        symbol=spec.symbol,
        data_type=spec.data_type,
        collection_layout=spec.settings.collection_layout,
        days=coverage,
    )


def measure_catalog(
    specs: Iterable[DagSpec],
    db_for: Callable[[str], Any],
    runs: Callable[[str], list[dict[str, Any]]],
    today: date | None = None,
    only: Sequence[str] = (),
) -> list[PipelineCoverage]:
    """Coverage of every pipeline with declared history. `db_for(arango_conn_id)`; `only`: dag ids,
    symbols (BTCUSDT), types (api_candles_1m) or catalog pipeline names to keep."""
    wanted = {w.lower() for w in only}
    result = []
    for spec in specs:
        history = declared_history(spec)
        if history is None:
            continue
        names = {spec.dag_id, spec.symbol.lower(), spec.data_type, spec.pipeline}
        if wanted and not wanted & names:
            continue
        result.append(measure(spec, history, db_for(spec.settings.connections.arango), runs, today))
    return result


def summary_lines(coverages: Sequence[PipelineCoverage]) -> list[str]:
    """One line per pipeline and one per day that is not complete (for logs and run notes)."""
    lines = []
    for cov in coverages:
        totals = ", ".join(f"{n} {DayState(s).label}" for s, n in cov.totals().items() if n)
        lines.append(f"{cov.dag_id}: {len(cov.days)} day(s): {totals or 'none'}")
        for day in cov.days:
            if day.state in NEEDS_LOAD:
                expected = "?" if day.expected is None else day.expected
                run = f", run {day.run.run_id} {day.run.state}" if day.run else ""
                lines.append(f"  {day.day} {day.state.label}: {day.stored}/{expected} records{run}")
    return lines
