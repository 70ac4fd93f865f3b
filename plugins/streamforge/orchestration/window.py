"""The time window a run loads: its default, and the checks on user-given windows.

Airflow 3.3 gives a run of `CronDataIntervalTimetable("0 0 * * *")` two different intervals
for the same logical date (measured; tests/dags/test_window.py):

* scheduled and backfill runs: logical date L = data_interval_start, interval [L, L + 1 day);
* manual runs (UI, REST `POST /dagRuns` with `logical_date`, `dag.test`): the timetable's
  `infer_manual_data_interval(run_after=L)`, i.e. the interval ENDING at L: [L - 1 day, L).

So the default window is computed from the logical date, not read from the data interval:
a logical date on the schedule grid means the interval starting there (2024-08-01 loads
2024-08-01 in both cases, and scheduled runs get exactly their data interval); a logical date
between grid points (a manual "now") means the last complete interval before it, as Airflow
infers. Runs without a logical date use their run_after the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from streamforge.contracts.config import TimeRange
from streamforge.contracts.names import DataType


class WindowError(ValueError):
    """A requested window cannot be loaded; the message says what to change."""


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise WindowError(f"{value!r} has no timezone")
    return datetime.fromtimestamp(value.timestamp(), UTC)


def default_window(cron: str, logical_date: datetime | None, run_after: datetime) -> TimeRange:
    """The window of a run that gives no `start`/`end` (see the module docstring)."""
    from croniter import croniter

    anchor = _utc(logical_date or run_after)
    first_at_or_after = croniter(cron, anchor - timedelta(microseconds=1)).get_next(datetime)
    if first_at_or_after == anchor:
        return TimeRange(start=anchor, end=croniter(cron, anchor).get_next(datetime))
    end = croniter(cron, anchor).get_prev(datetime)
    return TimeRange(start=croniter(cron, end).get_prev(datetime), end=end)


def _human(delta: timedelta) -> str:
    if delta % timedelta(days=1) == timedelta(0):
        return f"{delta.days} day(s)"
    return f"{delta.total_seconds() / 3600:g} hour(s)"


def resolve_window(
    start: str | None,
    end: str | None,
    default: TimeRange,
    data_type: DataType,
    now: datetime,
    limit: timedelta | None = None,
) -> TimeRange:
    """The window to load: params `start`/`end` or the default, checked against the rules.

    `limit`: the largest window (default: the type's `max_window`; a monthly DAG allows a month).
    Raises WindowError whose message says what to fix.
    """
    if (start is None) != (end is None):
        given, missing = ("start", "end") if start is not None else ("end", "start")
        raise WindowError(
            f"params: `{given}` is set but `{missing}` is not: give both `start` and `end` "
            "(ISO dates or date-times, end exclusive), or neither to load the run's data interval"
        )
    if start is None or end is None:
        window = default
    else:
        try:
            window = TimeRange.model_validate(TimeRange.parse(f"{start}/{end}"))
        except ValidationError as exc:
            detail = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise WindowError(
                f"params: {detail}: set `end` later than `start` (the window is [start, end), end exclusive)"
            ) from None
        except ValueError as exc:
            raise WindowError(f"params: {exc}") from None
    now = _utc(now)
    if window.end > now:
        raise WindowError(
            f"window {window.iso()} ends in the future (now {now.isoformat().replace('+00:00', 'Z')}): "
            "pick an `end` that has passed, or trigger with an earlier logical date"
        )
    width = window.end - window.start
    limit = limit or data_type.max_window
    if width > limit:
        raise WindowError(
            f"window {window.iso()} spans {_human(width)}, more than the {_human(limit)} "
            f"one {data_type.name} run may load: split it into smaller windows (e.g. a backfill, one run per day)"
        )
    return window
