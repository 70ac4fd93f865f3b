"""Whole calendar months from data.binance.vision's monthly archives.

A window that covers a complete calendar month that has ended (the monthly DAG's window, or a
long backfill) reads that month from ONE monthly file
(`/monthly/klines/{SYMBOL}/{interval}/{SYMBOL}-{interval}-{YYYY-MM}.zip`,
`/monthly/aggTrades/{SYMBOL}/{SYMBOL}-aggTrades-{YYYY-MM}.zip`, each verified against its
`.CHECKSUM`) instead of ~30 daily files. Everything else keeps the daily plan. The records,
and so the documents, are the same either way: the monthly file is the month's daily rows.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from streamforge.contracts.names import DataType, Kind

if TYPE_CHECKING:
    from streamforge_workers.loader.sources import Segment

DAY_MS = 86_400_000


def _ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


def _next_month(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


def monthly_url(base: str, symbol: str, data_type: DataType, month_start_ms: int) -> str:
    month = datetime.fromtimestamp(month_start_ms / 1000, UTC).strftime("%Y-%m")
    base = base.rstrip("/")
    if data_type.kind is Kind.TRADES:
        return f"{base}/monthly/aggTrades/{symbol}/{symbol}-aggTrades-{month}.zip"
    assert data_type.interval is not None
    code = data_type.interval.code
    return f"{base}/monthly/klines/{symbol}/{code}/{symbol}-{code}-{month}.zip"


def use_monthly_archives(segments: list[Segment], today: date) -> list[Segment]:
    """Replace the daily archive segments of every complete, ended calendar month by one monthly one."""
    out: list[Segment] = []
    i = 0
    while i < len(segments):
        seg = segments[i]
        first_day = datetime.fromtimestamp(seg.start_ms / 1000, UTC).date()
        month_end = _ms(_next_month(first_day))
        run = _archive_run(segments, i, month_end)
        if first_day.day == 1 and seg.start_ms == _ms(first_day) and run and month_end <= _ms(today):
            out.append(replace(seg, end_ms=month_end, monthly=True))
            i += run
        else:
            out.append(seg)
            i += 1
    return out


def _archive_run(segments: list[Segment], i: int, month_end: int) -> int:
    """How many segments from i are consecutive whole-day archive segments ending exactly at month_end."""
    expected = segments[i].start_ms
    for n, seg in enumerate(segments[i:], start=1):
        if seg.source != "archive" or seg.monthly or seg.start_ms != expected or seg.end_ms - seg.start_ms != DAY_MS:
            return 0
        expected = seg.end_ms
        if expected == month_end:
            return n
    return 0


def daily_segments(month: Segment) -> list[Segment]:
    """The month's days as daily archive segments (the fallback when the monthly file is missing)."""
    return [
        replace(month, start_ms=t, end_ms=t + DAY_MS, monthly=False)
        for t in range(month.start_ms, month.end_ms, DAY_MS)
    ]
