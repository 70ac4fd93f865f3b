"""Month-sized runs: the `{dag_id}__monthly` DAG of a catalog entry with `history.window: month`.

Same tasks as the daily DAG; what differs is only here: its id, a monthly data-interval
timetable (a run's window is one calendar month: scheduled and backfill runs load the month
starting at their logical date), its start date (the first month of the history) and the
largest window a run may load (a month, for trades too). Its loader reads complete, ended
months from the monthly archive (loader/monthly.py), and its sink stores each record in the
collection of its day (names.routes_per_day), so monthly and daily runs over the same days
converge to identical documents. Listing boundaries and gap rules apply unchanged.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from streamforge.contracts.names import MONTH_WINDOW

if TYPE_CHECKING:
    from streamforge.orchestration.catalog import DagSpec

MONTHLY_SUFFIX = "__monthly"
MONTHLY_CRON = "0 0 1 * *"  # CronDataIntervalTimetable: [1st of the month, 1st of the next)


def monthly_dag_id(dag_id: str) -> str:
    return f"{dag_id}{MONTHLY_SUFFIX}"


def is_monthly(spec: DagSpec) -> bool:
    from streamforge.orchestration.catalog import HistoryWindow

    return spec.run_window is HistoryWindow.MONTH


def monthly_spec(spec: DagSpec) -> DagSpec:
    """The monthly DAG of a daily DAG's spec whose history declares `window: month`."""
    from streamforge.orchestration.catalog import HistoryWindow

    history = spec.settings.history
    if history is None or history.window is not HistoryWindow.MONTH:
        raise ValueError(f"{spec.dag_id} declares no monthly history")
    first_month = date(history.since.year, history.since.month, 1)
    settings = spec.settings.model_copy(
        update={"schedule": MONTHLY_CRON, "start_date": min(first_month, spec.settings.start_date)}
    )
    return spec.model_copy(
        update={"dag_id": monthly_dag_id(spec.dag_id), "settings": settings, "run_window": HistoryWindow.MONTH}
    )


def window_limit(spec: DagSpec) -> timedelta:
    """The largest window one run of this DAG may load: the type's limit, or a month for monthly DAGs."""
    limit = spec.type.max_window
    return max(limit, MONTH_WINDOW) if is_monthly(spec) else limit
