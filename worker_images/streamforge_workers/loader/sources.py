"""Where a window's records come from, and proof of what is missing and why.

`plan` splits the half-open window into segments: whole past UTC days from the daily archive
(LOADER_SOURCE=auto/archive), everything else from the REST API. `RecordSource.records`
yields the window's records in order and classifies every hole (contracts/gaps.py), never
guessing and never silently:

* a hole in a REST answer is the exchange's own: an **exchange gap** (`rest_response`; a day
  whose archive file is missing and whose REST answer is empty: `both_sources_empty`);
* a hole in an archive file is asked of REST for exactly that range: what REST has is filled
  in and recorded as a **repair**, what REST lacks too is an exchange gap (`rest_range`;
  aggTrades: `rest_from_id`, asked with `fromId`);
* anything else — duplicates, disorder, off-grid candles, a trade chain that breaks without an
  id hole, parser and transport errors — is a **fault** and fails the load.

Exchange gaps and repairs are collected in `RecordSource.gaps` / `.repairs`; with GAPS=fail the
loader fails after the last record, naming every missing range.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from streamforge.contracts.config import LoaderSource
from streamforge.contracts.gaps import ConfirmedBy, Gap, Repair, unit_for
from streamforge.contracts.names import DataType, Interval, Kind
from streamforge.contracts.records import (
    Candle,
    RecordError,
    Trade,
    candle_from_rest,
    candles_from_csv,
    trade_from_rest,
    trades_from_csv,
)
from streamforge_workers.loader.archive import ArchiveClient, ArchiveMissing, agg_trades_url, kline_url
from streamforge_workers.loader.binance_rest import BinanceRest
from streamforge_workers.loader.hooks import Hooks, log
from streamforge_workers.loader.monthly import daily_segments, monthly_url
from streamforge_workers.runtime.worker import FatalError

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# Archive rows skipped before the window start are counted; stop is checked this often.
STOP_CHECK_ROWS = 2000

Origin = Literal["archive", "rest", "rest_fallback"]


def iso(ms: int) -> str:
    """Epoch ms → `2020-01-01T10:00:00Z` (milliseconds shown only when not zero)."""
    text = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return text.replace(".000+00:00", "Z").replace("+00:00", "Z")


def day_of(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


# -- planning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    source: Literal["archive", "rest"]
    start_ms: int
    end_ms: int  # exclusive
    # A whole calendar month from the monthly archive file (loader/monthly.py), not one day.
    monthly: bool = False

    @property
    def day(self) -> date:
        return day_of(self.start_ms)

    def describe(self) -> dict[str, str]:
        source = "archive_month" if self.monthly else self.source
        return {"source": source, "start": iso(self.start_ms), "end": iso(self.end_ms)}


def archive_supported(data_type: DataType) -> bool:
    """Daily archive files exist for aggTrades and for kline intervals up to one day."""
    if data_type.kind is Kind.TRADES:
        return True
    interval = data_type.interval
    return interval is not None and interval.ms is not None and DAY_MS % interval.ms == 0


def plan(start_ms: int, end_ms: int, mode: LoaderSource, data_type: DataType, today: date) -> list[Segment]:
    """Segments covering [start_ms, end_ms) in order.

    rest: one REST segment. archive: one archive segment per UTC day touched. auto: archive
    for whole UTC days inside the window that ended before `today` (UTC), REST for the rest.
    """
    mode = LoaderSource(mode)
    if mode is LoaderSource.ARCHIVE and not archive_supported(data_type):
        raise FatalError(
            f"LOADER_SOURCE=archive: data.binance.vision has no daily files for {data_type.name}; "
            "use LOADER_SOURCE=rest or auto"
        )
    if mode is LoaderSource.REST or not archive_supported(data_type):
        return [Segment("rest", start_ms, end_ms)]
    today_ms = int(datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp() * 1000)
    segments: list[Segment] = []
    day_start = start_ms - start_ms % DAY_MS
    while day_start < end_ms:
        lo, hi = max(start_ms, day_start), min(end_ms, day_start + DAY_MS)
        whole_past_day = lo == day_start and hi == day_start + DAY_MS and hi <= today_ms
        source: Literal["archive", "rest"] = "archive" if mode is LoaderSource.ARCHIVE or whole_past_day else "rest"
        if source == "rest" and segments and segments[-1].source == "rest":
            segments[-1] = Segment("rest", segments[-1].start_ms, hi)  # merge REST stretches
        else:
            segments.append(Segment(source, lo, hi))
        day_start += DAY_MS
    return segments


# -- holes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hole:
    """Missing open times (candles) or aggregate trade ids, inclusive."""

    first: int
    last: int
    count: int


def grid_walk(candles: Iterable[Candle], grid: Iterable[int], interval: Interval, label: str) -> Iterator[Any]:
    """Candles and `Hole`s in open-time order over `grid`; duplicates, disorder and off-grid are faults."""
    expected = iter(grid)
    for candle in candles:
        want = next(expected, None)
        if want is None:
            raise FatalError(f"unexpected {label} candle at {iso(candle.open_time)}, after the window end")
        if candle.open_time < want:
            raise FatalError(
                f"duplicate or out-of-order {label} candle at {iso(candle.open_time)} (expected {iso(want)} next)"
            )
        if candle.open_time > want:
            missing, last, on_grid = 1, want, False
            for t in expected:
                if t >= candle.open_time:
                    on_grid = t == candle.open_time
                    break
                missing, last = missing + 1, t
            if not on_grid:
                raise FatalError(f"{label} candle at {iso(candle.open_time)} is not on the {interval.code} grid")
            yield Hole(want, last, missing)
        yield candle
    rest = list(expected)
    if rest:
        yield Hole(rest[0], rest[-1], len(rest))


def describe_hole(count: int, first: int, last: int, label: str) -> str:
    noun = "candle" if count == 1 else "candles"
    return f"{count} {noun} missing from {iso(first)} to {iso(last)} ({label})"


def check_trade_order(prev: Trade, trade: Trade, label: str) -> None:
    """Faults between two aggregate trades in a row (an id hole is classified by the caller)."""
    if trade.trade_id <= prev.trade_id:
        raise FatalError(f"duplicate or out-of-order {label} aggregate trade {trade.trade_id} after {prev.trade_id}")
    if trade.trade_id == prev.trade_id + 1 and trade.first_trade_id != prev.last_trade_id + 1:
        raise FatalError(
            f"broken trade chain: aggregate trade {trade.trade_id} starts at trade id "
            f"{trade.first_trade_id}, but {prev.trade_id} ended at {prev.last_trade_id} "
            f"(expected {prev.last_trade_id + 1}) at {iso(trade.timestamp)} ({label})"
        )
    if trade.timestamp < prev.timestamp:
        raise FatalError(
            f"out-of-order {label} aggregate trade {trade.trade_id} at {iso(trade.timestamp)}, "
            f"before {prev.trade_id} at {iso(prev.timestamp)}"
        )


# -- iteration --------------------------------------------------------------------------------


class RecordSource:
    """Records of a window from planned segments (archive with REST fallback and repair in auto)."""

    def __init__(
        self,
        *,
        symbol: str,
        data_type: DataType,
        mode: LoaderSource,
        rest: BinanceRest,
        archive: ArchiveClient,
        archive_base: str,
        hooks: Hooks,
        page_limit: int = 1000,
    ) -> None:
        self.symbol = symbol
        self.data_type = data_type
        self.mode = LoaderSource(mode)
        self.rest = rest
        self.archive = archive
        self.archive_base = archive_base
        self.hooks = hooks
        self.limit = page_limit
        self.label = f"{symbol} {data_type.interval.code if data_type.interval else 'aggTrades'}"
        self.gaps: list[Gap] = []
        self.repairs: list[Repair] = []

    # -- results ------------------------------------------------------------------------------
    def _gap(self, first: int, last: int, count: int, how: ConfirmedBy) -> None:
        prev = self.gaps[-1] if self.gaps else None
        step = self.data_type.interval.ms if self.data_type.interval and self.data_type.interval.ms else 1
        if prev is not None and prev.confirmed_by is how and prev.last + step == first:
            self.gaps[-1] = prev.model_copy(update={"last": last, "count": prev.count + count})
        else:
            self.gaps.append(self._range(Gap, first, last, count, confirmed_by=how))
        noun = "candles" if self.data_type.kind is Kind.CANDLES else "aggregate trades"
        log.warning(
            "exchange gap: %d %s missing, %s..%s, confirmed by %s",
            count,
            noun,
            first,
            last,
            how.value,
            extra={"gap": {"first": first, "last": last, "count": count, "confirmed_by": how.value}},
        )

    def _repair(self, first: int, last: int, count: int) -> None:
        repair = self._range(Repair, first, last, count)
        self.repairs.append(repair)
        message = f"archive lacked {repair.describe()}; repaired from REST"
        log.warning(message)
        self.hooks.notify(message, {"repair": repair.model_dump(mode="json")})

    def _range(self, model: Any, first: int, last: int, count: int, **more: Any) -> Any:
        unit = unit_for(self.data_type.name)
        return model(
            symbol=self.symbol, data_type=self.data_type.name, unit=unit, first=first, last=last, count=count, **more
        )

    def result_extra(self) -> dict[str, Any]:
        """What the `finished` event carries besides the count."""
        return {
            "gaps": [g.model_dump(mode="json", exclude_none=True) for g in self.gaps],
            "repairs": [r.model_dump(mode="json") for r in self.repairs],
        }

    # -- records ------------------------------------------------------------------------------
    def records(self, segments: list[Segment]) -> Iterator[Any]:
        """The window's records in order; holes classified as they are met."""
        if self.data_type.kind is Kind.TRADES:
            return self._trades(segments)
        return self._candles(segments)

    @property
    def _interval(self) -> Interval:
        assert self.data_type.interval is not None
        return self.data_type.interval

    def _candles(self, segments: list[Segment]) -> Iterator[Candle]:
        interval = self._interval
        for seg in segments:
            origin, raw = self._open(seg)
            grid = interval.open_times(seg.start_ms, seg.end_ms)
            for item in grid_walk(raw, grid, interval, self.label):
                if isinstance(item, Candle):
                    yield item
                elif origin == "archive":
                    yield from self._fill_candles(item)
                else:
                    whole = item.count == len(grid)
                    how = (
                        ConfirmedBy.BOTH_SOURCES_EMPTY
                        if origin == "rest_fallback" and whole
                        else ConfirmedBy.REST_RESPONSE
                    )
                    self._gap(item.first, item.last, item.count, how)

    def _fill_candles(self, hole: Hole) -> Iterator[Candle]:
        """Ask REST for exactly the archive's hole: what it has is a repair, what it lacks a gap."""
        interval = self._interval
        end = interval.close_time(hole.last) + 1
        fills = self._rest_candles(Segment("rest", hole.first, end))
        run: list[int] = []
        for item in grid_walk(fills, interval.open_times(hole.first, end), interval, f"{self.label} REST"):
            if isinstance(item, Candle):
                if self.mode is LoaderSource.ARCHIVE:
                    raise FatalError(
                        f"the archive lacks {describe_hole(hole.count, hole.first, hole.last, self.label)} that "
                        "the REST API has; LOADER_SOURCE=archive does not repair from REST (use auto)"
                    )
                run.append(item.open_time)
                yield item
                continue
            if run:
                self._repair(run[0], run[-1], len(run))
                run = []
            self._gap(item.first, item.last, item.count, ConfirmedBy.REST_RANGE)
        if run:
            self._repair(run[0], run[-1], len(run))

    def _trades(self, segments: list[Segment]) -> Iterator[Trade]:
        prev: Trade | None = None
        for seg in segments:
            _origin, raw = self._open(seg)
            for trade in raw:
                if prev is not None and trade.trade_id > prev.trade_id + 1:
                    for fill in self._fill_trades(prev, trade):
                        check_trade_order(prev, fill, self.label)
                        yield fill
                        prev = fill
                if prev is not None:
                    check_trade_order(prev, trade, self.label)
                yield trade
                prev = trade

    def _fill_trades(self, prev: Trade, following: Trade) -> Iterator[Trade]:
        """Ids prev+1..following-1 by `fromId`: returned ones fill the hole, skipped ones are a gap."""
        first, last = prev.trade_id + 1, following.trade_id - 1
        cursor, run = first, []
        while cursor <= last:
            page = self.rest.agg_trades(self.symbol, from_id=cursor, limit=self.limit)
            trades = [self._trade(obj) for obj in page]
            trades = [t for t in trades if t.trade_id >= cursor]
            inside = [t for t in trades if t.trade_id <= last]
            for trade in inside:
                if trade.trade_id > cursor:  # REST skips these ids too
                    self._close_trade_run(run)
                    run = []
                    self._gap(cursor, trade.trade_id - 1, trade.trade_id - cursor, ConfirmedBy.REST_FROM_ID)
                if self.mode is LoaderSource.ARCHIVE:
                    raise FatalError(
                        f"the archive lacks aggregate trades {first}..{last} that the REST API has; "
                        "LOADER_SOURCE=archive does not repair from REST (use auto)"
                    )
                run.append(trade.trade_id)
                yield trade
                cursor = trade.trade_id + 1
            if len(inside) < len(trades) or not trades:  # REST went past the hole (or has nothing more)
                break
        self._close_trade_run(run)
        if cursor <= last:
            self._gap(cursor, last, last - cursor + 1, ConfirmedBy.REST_FROM_ID)

    def _close_trade_run(self, run: list[int]) -> None:
        if run:
            self._repair(run[0], run[-1], len(run))

    def _trade(self, obj: dict[str, Any]) -> Trade:
        try:
            return trade_from_rest(self.symbol, obj)
        except RecordError as exc:
            raise FatalError(f"Binance aggTrades: {exc}") from exc

    # -- one segment --------------------------------------------------------------------------
    def _open(self, seg: Segment) -> tuple[Origin, Iterator[Any]]:
        """The segment's raw records and where they come from (archive 404 in auto: REST)."""
        trades = self.data_type.kind is Kind.TRADES
        if seg.source == "rest":
            return "rest", self._rest_trades(seg) if trades else self._rest_candles(seg)
        if seg.monthly:
            return self._open_month(seg)
        url = (
            agg_trades_url(self.archive_base, self.symbol, seg.day)
            if trades
            else kline_url(self.archive_base, self.symbol, self._interval.code, seg.day)
        )
        try:
            path = self.archive.download(url)
        except ArchiveMissing as exc:
            if self.mode is not LoaderSource.AUTO:
                raise FatalError(f"{exc}; LOADER_SOURCE=archive has no fallback (use auto or rest)") from exc
            message = f"no archive file for {seg.day.isoformat()} ({exc.url}: HTTP 404), loading that day from REST"
            log.warning(message, extra={"url": exc.url})
            self.hooks.notify(message, {"fallback": "rest", "day": seg.day.isoformat(), "url": exc.url})
            return "rest_fallback", self._rest_trades(seg) if trades else self._rest_candles(seg)
        log.info("archive %s verified", url, extra={"url": url, "bytes": path.stat().st_size})
        return "archive", self._archive_rows(seg, url, path, trades)

    def _open_month(self, seg: Segment) -> tuple[Origin, Iterator[Any]]:
        """A whole month from its monthly archive; without one (auto), from its daily archives."""
        url = monthly_url(self.archive_base, self.symbol, self.data_type, seg.start_ms)
        try:
            path = self.archive.download(url)
        except ArchiveMissing as exc:
            if self.mode is not LoaderSource.AUTO:
                raise FatalError(f"{exc}; LOADER_SOURCE=archive has no fallback (use auto or rest)") from exc
            log.warning("no monthly archive %s (HTTP 404): loading the month from its daily archives", exc.url)
            days = daily_segments(seg)
            # Each day keeps its own REST fallback; a hole the days leave is asked of REST like any archive hole.
            return "archive", (record for day in days for record in self._open(day)[1])
        log.info("monthly archive %s verified", url, extra={"url": url, "bytes": path.stat().st_size})
        return "archive", self._archive_rows(seg, url, path, self.data_type.kind is Kind.TRADES)

    # -- archive ------------------------------------------------------------------------------
    def _archive_rows(self, seg: Segment, url: str, path: Any, trades: bool) -> Iterator[Any]:
        try:
            lines = self.archive.lines(path, url)
            rows: Iterator[Candle] | Iterator[Trade] = (
                trades_from_csv(self.symbol, lines)
                if trades
                else candles_from_csv(self.symbol, self._interval.code, lines)
            )
            field = self.data_type.time_field
            for n, record in enumerate(rows):
                if n % STOP_CHECK_ROWS == 0:
                    self.hooks.check_stop()
                t = getattr(record, field)
                if t < seg.start_ms:
                    continue
                if t >= seg.end_ms:
                    return  # rows are in time order; the walk would catch anything else
                yield record
        except RecordError as exc:
            raise FatalError(f"{url}: {exc}") from exc
        finally:
            path.unlink(missing_ok=True)

    # -- REST ---------------------------------------------------------------------------------
    def _rest_candles(self, seg: Segment) -> Iterator[Candle]:
        """Exact pagination: next startTime = last open time + one interval (1M: next month)."""
        interval = self._interval
        cursor = seg.start_ms
        while cursor < seg.end_ms:
            rows = self.rest.klines(self.symbol, interval.code, cursor, seg.end_ms - 1, self.limit)
            if not rows:
                return  # nothing more: the walk names what is missing
            last = None
            for row in rows:
                try:
                    candle = candle_from_rest(self.symbol, interval.code, row)
                except RecordError as exc:
                    raise FatalError(f"Binance klines: {exc}") from exc
                if seg.start_ms <= candle.open_time < seg.end_ms:
                    yield candle
                last = candle.open_time
            assert last is not None
            following = interval.close_time(last) + 1
            if following <= cursor:
                raise FatalError(f"Binance klines did not advance past {iso(cursor)}; stopping")
            cursor = following

    def _rest_trades(self, seg: Segment) -> Iterator[Trade]:
        """Find the first aggregate trade by time (hour by hour), then page by fromId.

        If fromId paging runs dry before the window end, search by time again from the last
        trade: an empty page is not taken as the end of the data unless time agrees.
        """
        after_id, t = -1, seg.start_ms
        while t < seg.end_ms:
            page = [obj for obj in self._search(t, seg.end_ms) if int(obj.get("a", -1)) > after_id]
            if not page:
                return
            while page:
                for obj in page:
                    trade = self._trade(obj)
                    if trade.timestamp >= seg.end_ms:
                        return
                    if trade.timestamp >= seg.start_ms:
                        yield trade
                    after_id, t = trade.trade_id, trade.timestamp + 1
                page = self.rest.agg_trades(self.symbol, from_id=after_id + 1, limit=self.limit)
            log.info("aggTrades paging by id ended at %d before the window end; searching by time", after_id)

    def _search(self, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """The first page of trades at or after start_ms, stepping an hour at a time."""
        t = start_ms
        while t < end_ms:
            span_end = min(t + HOUR_MS - 1, end_ms - 1)  # Binance: startTime..endTime < 1 hour
            page = self.rest.agg_trades(self.symbol, start_ms=t, end_ms=span_end, limit=self.limit)
            if page:
                return page
            t = span_end + 1
        return []


def gap_summary(gaps: list[Gap]) -> str:
    """Every whole missing range, for GAPS=fail."""
    return "; ".join(g.describe() for g in gaps)
