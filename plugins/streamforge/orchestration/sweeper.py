"""The sweeper: load again what coverage finds missing, partial or failed, as Airflow backfills.

Per pipeline with declared history and per sweep, through Airflow's backfill API
(`POST /api/v2/backfills`, reprocess `completed` so a failed or partial day runs again):

* whole calendar months that need loading entirely, through the `__monthly` DAG when the
  catalog builds one: one backfill over the first consecutive such months;
* otherwise single days through the daily DAG: one backfill over the first consecutive days
  that need loading.

Airflow allows one active backfill per DAG, and the sweeper never starts one next to a
running backfill of that DAG; days whose latest run is queued or running are left alone.
So a second sweep right after the first schedules nothing new. At most `budget` runs are
scheduled per sweep (the rest waits for the next sweep).
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Sequence
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict, Field

from streamforge.orchestration.airflow_api import AirflowApi, AirflowApiError
from streamforge.orchestration.coverage import NEEDS_LOAD, DayCoverage, DayState, PipelineCoverage

log = logging.getLogger(__name__)


class Backfill(BaseModel):
    """One backfill: logical dates `first`..`last` (inclusive) of `dag_id`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dag_id: str
    first: date
    last: date
    runs: int = Field(ge=1)
    reason: str
    backfill_id: int | None = None  # set once Airflow created it

    def line(self) -> str:
        span = str(self.first) if self.first == self.last else f"{self.first}..{self.last}"
        made = f" (backfill {self.backfill_id})" if self.backfill_id is not None else ""
        return f"{self.dag_id} {span}: {self.runs} run(s), {self.reason}{made}"


class SweepReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    budget: int
    scheduled: list[Backfill] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)  # why a pipeline needing loads got nothing

    @property
    def runs(self) -> int:
        return sum(b.runs for b in self.scheduled)

    def lines(self) -> list[str]:
        head = f"sweep: {len(self.scheduled)} backfill(s), {self.runs} run(s) of a budget of {self.budget}"
        return [head] + [f"  scheduled {b.line()}" for b in self.scheduled] + [f"  skipped {s}" for s in self.skipped]

    def note(self) -> str:
        """Markdown for the sweeper run's note."""
        if not self.scheduled and not self.skipped:
            return "**nothing to load**: every day of the declared history is complete, not listed or loading"
        parts = [f"**scheduled** {b.line()}" for b in self.scheduled]
        parts += [f"**skipped** {s}" for s in self.skipped]
        return "\n\n".join(parts)


def _first_consecutive(items: Sequence[date], step: int = 1) -> list[date]:
    """The leading items that follow each other by `step` days (months: by calendar month)."""
    run = list(items[:1])
    for item in items[1:]:
        expected = _next_month(run[-1]) if step == 0 else run[-1] + timedelta(days=step)
        if item != expected:
            break
        run.append(item)
    return run


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _whole_months(days: Sequence[DayCoverage]) -> list[date]:
    """First days of the months whose every day is in `days`, needs loading and is not loading."""
    by_month: dict[date, list[DayCoverage]] = {}
    for day in days:
        by_month.setdefault(day.day.replace(day=1), []).append(day)
    months = []
    for month, members in sorted(by_month.items()):
        length = calendar.monthrange(month.year, month.month)[1]
        if len(members) == length and all(d.state in NEEDS_LOAD and not d.in_progress for d in members):
            months.append(month)
    return months


def _reason(days: Sequence[DayCoverage]) -> str:
    counts: dict[DayState, int] = {}
    for day in days:
        counts[day.state] = counts.get(day.state, 0) + 1
    return ", ".join(f"{n} {s.label}" for s, n in counts.items())


def plan_sweep(coverages: Sequence[PipelineCoverage], busy: set[str], budget: int) -> SweepReport:
    """What to backfill (pure). `busy`: DAG ids with a backfill still running."""
    scheduled: list[Backfill] = []
    skipped: list[str] = []
    left = budget
    for cov in coverages:
        needing = [d for d in cov.days if d.state in NEEDS_LOAD and not d.in_progress]
        if not needing:
            continue
        covered: set[date] = set()
        if cov.monthly_dag_id:
            months = _whole_months(cov.days)
            if months and cov.monthly_dag_id in busy:
                skipped.append(f"{cov.monthly_dag_id}: a backfill of it is still running")
                covered |= {d.day for d in cov.days if d.day.replace(day=1) in months}
            elif months:
                chosen = _first_consecutive(months, step=0)[: max(left, 0)]
                if chosen:
                    members = [d for d in cov.days if d.day.replace(day=1) in chosen]
                    scheduled.append(Backfill(dag_id=cov.monthly_dag_id, first=chosen[0], last=chosen[-1],
                                              runs=len(chosen), reason=_reason(members)))  # fmt: skip
                    left -= len(chosen)
                covered |= {d.day for d in cov.days if d.day.replace(day=1) in months}
        daily = [d for d in needing if d.day not in covered]
        if not daily:
            continue
        if cov.dag_id in busy:
            skipped.append(f"{cov.dag_id}: a backfill of it is still running ({len(daily)} day(s) wait)")
            continue
        if left <= 0:
            skipped.append(f"{cov.dag_id}: budget spent ({len(daily)} day(s) wait for the next sweep)")
            continue
        chosen_days = _first_consecutive([d.day for d in daily])[:left]
        members = [d for d in daily if d.day in chosen_days]
        scheduled.append(Backfill(dag_id=cov.dag_id, first=chosen_days[0], last=chosen_days[-1],
                                  runs=len(chosen_days), reason=_reason(members)))  # fmt: skip
        left -= len(chosen_days)
    return SweepReport(budget=budget, scheduled=scheduled, skipped=skipped)


def busy_dags(api: AirflowApi, coverages: Sequence[PipelineCoverage]) -> set[str]:
    dags = {d for cov in coverages for d in (cov.dag_id, cov.monthly_dag_id) if d}
    return {dag for dag in sorted(dags) if api.active_backfill(dag) is not None}


def sweep(
    api: AirflowApi, coverages: Sequence[PipelineCoverage], budget: int, max_active_runs: int = 4, dry_run: bool = False
) -> SweepReport:
    """Plan and create the backfills; a backfill Airflow refuses is reported as skipped."""
    # Months go to the monthly DAG only where Airflow has it (else their days go to the daily one).
    coverages = [
        c if not c.monthly_dag_id or api.dag_exists(c.monthly_dag_id) else c.model_copy(update={"monthly_dag_id": None})
        for c in coverages
    ]
    planned = plan_sweep(coverages, busy_dags(api, coverages), budget)
    if dry_run:
        return planned
    created: list[Backfill] = []
    skipped = list(planned.skipped)
    for backfill in planned.scheduled:
        try:
            answer = api.create_backfill(backfill.dag_id, backfill.first, backfill.last,
                                         reprocess="completed", max_active_runs=max_active_runs)  # fmt: skip
        except AirflowApiError as exc:  # e.g. 409: a backfill started meanwhile
            log.warning("backfill not created: %s", exc)
            skipped.append(f"{backfill.line()}: Airflow refused it: {exc}")
            continue
        created.append(backfill.model_copy(update={"backfill_id": answer.get("id")}))
    return SweepReport(budget=budget, scheduled=created, skipped=skipped)
