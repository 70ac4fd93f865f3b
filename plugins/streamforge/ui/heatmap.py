"""HTML of the coverage page (pure): per symbol x type a calendar heat-map, one cell per day.

Every cell links to the run that decided the day (or to the DAG's runs when none did) and
carries its numbers as data attributes (`data-day`, `data-state`, `data-stored`,
`data-expected`), which the browser test compares with ArangoDB.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date
from html import escape
from urllib.parse import quote

from streamforge.orchestration.coverage import DayCoverage, DayState, PipelineCoverage

COLOURS = {
    DayState.COMPLETE: "#2f9e44",
    DayState.WITH_GAPS: "#94d82d",
    DayState.PARTIAL: "#f59f00",
    DayState.FAILED: "#e03131",
    DayState.MISSING: "#ced4da",
    DayState.NOT_LISTED: "#ffffff",
}

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;color:#212529;background:#fff}
h1{font-size:20px;margin:0 0 8px} h2{font-size:16px;margin:18px 0 4px} h2 small{color:#868e96;font-weight:normal}
.legend span,.totals span{display:inline-block;margin:0 12px 4px 0;font-size:13px}
.legend i{display:inline-block;width:12px;height:12px;border:1px solid #adb5bd;margin-right:4px;vertical-align:-1px}
.months{display:flex;flex-wrap:wrap;gap:14px}
.month table{border-collapse:separate;border-spacing:2px}
.month caption{font-size:12px;color:#495057;text-align:left}
.month th{font-size:10px;color:#868e96;font-weight:normal}
.month td{width:22px;height:22px;padding:0}
a.day{display:block;width:22px;height:22px;line-height:22px;text-align:center;font-size:10px;
  color:#212529;text-decoration:none;border:1px solid #adb5bd;border-radius:3px;box-sizing:border-box}
a.day.running{outline:2px solid #1c7ed6}
a.s-complete,a.s-failed{color:#fff}
a.s-not_listed{border-style:dashed;color:#adb5bd}
.empty{color:#868e96}
"""


def _cell_href(day: DayCoverage, cov: PipelineCoverage, base: str) -> str:
    if day.run is not None:
        return base + day.run.ui_path
    return f"{base}/dags/{quote(cov.dag_id, safe='')}/runs"


def _cell(day: DayCoverage, cov: PipelineCoverage, base: str) -> str:
    expected = "" if day.expected is None else str(day.expected)
    run = f"; run {day.run.run_id} ({day.run.state})" if day.run else "; no run"
    gaps = f", {day.gap_records} in exchange gaps" if day.gap_records else ""
    title = f"{day.day}: {day.state.label}, {day.stored} stored" + (f" of {expected}" if expected else "") + gaps + run
    classes = f"day s-{day.state.value}" + (" running" if day.in_progress else "")
    return (
        f'<a class="{classes}" style="background:{COLOURS[day.state]}" target="_top" '
        f'href="{escape(_cell_href(day, cov, base))}" title="{escape(title)}" data-dag-id="{escape(cov.dag_id)}" '
        f'data-day="{day.day}" data-state="{day.state.value}" data-stored="{day.stored}" '
        f'data-expected="{expected}" data-run-id="{escape(day.run.run_id) if day.run else ""}">{day.day.day}</a>'
    )


def _month(year: int, month: int, days: dict[date, DayCoverage], cov: PipelineCoverage, base: str) -> str:
    rows = []
    for week in calendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
        cells = []
        for d in week:
            cells.append(f"<td>{_cell(days[d], cov, base)}</td>" if d.month == month and d in days else "<td></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{n}</th>" for n in ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"))
    return (f'<div class="month"><table><caption>{year}-{month:02d}</caption><tr>{head}</tr>'
            + "".join(rows) + "</table></div>")  # fmt: skip


def render_pipeline(cov: PipelineCoverage, base: str) -> str:
    days = {d.day: d for d in cov.days}
    months = sorted({(d.year, d.month) for d in days})
    totals = "".join(
        f'<span data-state="{s}" data-count="{n}"><b>{n}</b> {DayState(s).label}</span>'
        for s, n in cov.totals().items()
        if n
    )
    body = "".join(_month(y, m, days, cov, base) for y, m in months) or '<p class="empty">no day has ended yet</p>'
    return (
        f'<section class="pipeline" data-dag-id="{escape(cov.dag_id)}">'
        f"<h2>{escape(cov.symbol)} {escape(cov.data_type)} <small>{escape(cov.dag_id)}"
        f"{' + ' + escape(cov.monthly_dag_id) if cov.monthly_dag_id else ''}</small></h2>"
        f'<p class="totals">{totals}</p><div class="months">{body}</div></section>'
    )


def render_page(coverages: Sequence[PipelineCoverage], base: str) -> str:
    legend = "".join(
        f'<span><i style="background:{c};{"border-style:dashed" if s is DayState.NOT_LISTED else ""}"></i>'
        f"{s.label}</span>"
        for s, c in COLOURS.items()
    )
    legend += '<span><i style="outline:2px solid #1c7ed6"></i>run in progress</span>'
    sections = "".join(render_pipeline(c, base) for c in coverages) or (
        '<p class="empty">No pipeline of the catalog declares history (catalog <code>history</code>).</p>'
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>StreamForge coverage</title>'
        f"<style>{STYLE}</style></head><body><h1>StreamForge coverage</h1>"
        f'<p class="legend">{legend}</p>{sections}</body></html>'
    )
