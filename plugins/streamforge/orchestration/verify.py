"""`verify`: the collection(s) hold exactly the window's records (count, first/last key, no gaps).

A window routed per day (a monthly run) is checked over every day's collection, each for its
own part of the window, as one summary: a record stored in the wrong day's collection is missed
by its part's query and shows as a wrong count.

Reads through python-arango with contracts.aql.WINDOW_SUMMARY (the only AQL the product
issues). Candles must fill the interval grid of the window minus the exchange gaps the loader
recorded (contracts/gaps.py), so verification stays exact when history has holes; trades must
match the loader's count and be contiguous in aggregate trade id except for recorded gaps
(last - first + 1 == count + ids in recorded gaps).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streamforge.contracts.aql import WINDOW_SUMMARY, window_summary_bind_vars
from streamforge.contracts.config import TimeRange
from streamforge.contracts.gaps import Gap, Repair
from streamforge.contracts.names import DataType, Kind
from streamforge.orchestration.plan import RunPlan


class Summary(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    count: int
    first: int | None
    last: int | None
    exists: bool = True


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    collection: str
    window: str
    count: int
    first: int | None
    last: int | None
    expected_count: int | None
    problems: list[str]
    gaps: list[Gap] = Field(default_factory=list)  # exchange gaps, excluded from `expected_count`
    repairs: list[Repair] = Field(default_factory=list)
    reason: str | None = None  # why the window holds nothing (listing boundary)
    note: str | None = None  # the run note written for this report

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        verdict = "OK" if self.ok else "FAILED: " + "; ".join(self.problems)
        gaps = f" gaps={sum(g.count for g in self.gaps)} in {len(self.gaps)} range(s)" if self.gaps else ""
        return (
            f"verify {self.collection} {self.window}: count={self.count} first={self.first} "
            f"last={self.last} expected={self.expected_count}{gaps} -> {verdict}"
        )


def check(
    plan: RunPlan,
    summary: Summary,
    loader_records: int | None,
    gaps: list[Gap] | None = None,
    repairs: list[Repair] | None = None,
) -> Report:
    """Compare a window summary with what the window must hold (pure)."""
    gaps, repairs = list(gaps or []), list(repairs or [])
    data_type = DataType.parse(plan.data_type)
    window = TimeRange(start=plan.window_start, end=plan.window_end)
    label = collections_label(plan)
    problems: list[str] = [] if summary.exists else [f"collection {label} does not exist"]
    expected: int | None
    if data_type.kind is Kind.CANDLES:
        assert data_type.interval is not None
        grid = [
            t
            for t in data_type.interval.open_times(window.start_ms, window.end_ms)
            if not any(g.first <= t <= g.last for g in gaps)
        ]
        expected = len(grid)
        if summary.count != expected:
            problems.append(f"{summary.count} candles, expected {expected}")
        if grid and summary.count and (summary.first, summary.last) != (grid[0], grid[-1]):
            problems.append(f"open_time range {summary.first}..{summary.last}, expected {grid[0]}..{grid[-1]}")
        if loader_records is not None and loader_records != expected:
            problems.append(f"the loader produced {loader_records} candles, the window has {expected}")
    else:
        expected = loader_records
        if expected is not None and summary.count != expected:
            problems.append(f"{summary.count} trades, the loader produced {expected}")
        if summary.count and summary.first is not None and summary.last is not None:
            span = summary.last - summary.first + 1
            lo, hi = summary.first, summary.last
            in_gaps = sum(max(0, min(g.last, hi) - max(g.first, lo) + 1) for g in gaps)
            if span != summary.count + in_gaps:
                recorded = f" and {in_gaps} recorded as exchange gaps" if in_gaps else ""
                problems.append(
                    f"trade ids {summary.first}..{summary.last} span {span} ids for "
                    f"{summary.count} trades{recorded}: {span - summary.count - in_gaps} missing"
                )
    return Report(
        collection=label,
        window=plan.time_range,
        count=summary.count,
        first=summary.first,
        last=summary.last,
        expected_count=expected,
        problems=problems,
        gaps=gaps,
        repairs=repairs,
    )


def collections_label(plan: RunPlan) -> str:
    """The plan's collection, or `first..last (n collections)` for a window routed per day."""
    parts = plan.parts
    if len(parts) == 1:
        return parts[0].collection
    return f"{parts[0].collection}..{parts[-1].collection} ({len(parts)} collections)"


def summarize(db: Any, plan: RunPlan) -> Summary:
    """Run WINDOW_SUMMARY on each of the plan's collections (a python-arango StandardDatabase), as one summary."""
    data_type = DataType.parse(plan.data_type)
    found: list[Summary] = []
    for part in plan.parts:
        if not db.has_collection(part.collection):
            continue  # counted as 0: the count and first/last checks name what is missing
        window = TimeRange(start=part.start, end=part.end)
        bind_vars = window_summary_bind_vars(
            part.collection, data_type.time_field, data_type.id_field, window.start_ms, window.end_ms
        )
        rows = list(db.aql.execute(WINDOW_SUMMARY, bind_vars=bind_vars))
        found.append(Summary.model_validate(rows[0]))
    if not found:
        return Summary(count=0, first=None, last=None, exists=False)
    firsts = [s.first for s in found if s.first is not None]
    lasts = [s.last for s in found if s.last is not None]
    return Summary(count=sum(s.count for s in found), first=min(firsts, default=None), last=max(lasts, default=None))


def open_database(url: str, database: str, username: str | None, password: str | None) -> Any:
    from arango import ArangoClient

    return ArangoClient(hosts=url).db(database, username=username or "root", password=password or "", verify=True)
