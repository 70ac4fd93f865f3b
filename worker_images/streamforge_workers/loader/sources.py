"""Where a window's records come from, and proof that none are missing.

`plan` splits the half-open window into segments: whole past UTC days from the daily archive
(LOADER_SOURCE=auto/archive), everything else from the REST API. `RecordSource.records`
yields the window's records in order; `checked_candles` / `checked_trades` turn any hole,
duplicate or disorder into an error naming it: a gap is never silent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from streamforge.contracts.config import LoaderSource
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
from streamforge_workers.runtime.worker import FatalError

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# Archive rows skipped before the window start are counted; stop is checked this often.
STOP_CHECK_ROWS = 2000


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

    @property
    def day(self) -> date:
        return day_of(self.start_ms)

    def describe(self) -> dict[str, str]:
        return {"source": self.source, "start": iso(self.start_ms), "end": iso(self.end_ms)}


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


# -- gap checks -------------------------------------------------------------------------------


def checked_candles(
    candles: Iterable[Candle], interval: Interval, start_ms: int, end_ms: int, label: str
) -> Iterator[Candle]:
    """Pass candles through while they follow the window's open-time grid exactly."""
    expected = iter(interval.open_times(start_ms, end_ms))
    for candle in candles:
        want = next(expected, None)
        if want is None:
            raise FatalError(f"unexpected {label} candle at {iso(candle.open_time)}, after the window end")
        if candle.open_time == want:
            yield candle
            continue
        if candle.open_time < want:
            raise FatalError(
                f"duplicate or out-of-order {label} candle at {iso(candle.open_time)} (expected {iso(want)} next)"
            )
        missing, last, on_grid = 1, want, False
        for t in expected:
            if t >= candle.open_time:
                on_grid = t == candle.open_time
                break
            missing, last = missing + 1, t
        if not on_grid:
            raise FatalError(f"{label} candle at {iso(candle.open_time)} is not on the {interval.code} grid")
        raise FatalError(_gap(missing, want, last, label))
    rest = list(expected)
    if rest:
        raise FatalError(_gap(len(rest), rest[0], rest[-1], label))


def _gap(count: int, first: int, last: int, label: str) -> str:
    noun = "candle" if count == 1 else "candles"
    return f"gap in source data: {count} {noun} missing from {iso(first)} to {iso(last)} ({label})"


def checked_trades(trades: Iterable[Trade], label: str) -> Iterator[Trade]:
    """Pass aggregate trades through while ids and trade ids are contiguous and time is ordered."""
    prev: Trade | None = None
    for trade in trades:
        if prev is not None:
            if trade.trade_id != prev.trade_id + 1:
                if trade.trade_id <= prev.trade_id:
                    raise FatalError(
                        f"duplicate or out-of-order {label} aggregate trade {trade.trade_id} after {prev.trade_id}"
                    )
                missing = trade.trade_id - prev.trade_id - 1
                raise FatalError(
                    f"gap in source data: {missing} aggregate trades missing "
                    f"(ids {prev.trade_id + 1}..{trade.trade_id - 1}) "
                    f"between {iso(prev.timestamp)} and {iso(trade.timestamp)} ({label})"
                )
            if trade.first_trade_id != prev.last_trade_id + 1:
                raise FatalError(
                    f"gap in source data: aggregate trade {trade.trade_id} starts at trade id "
                    f"{trade.first_trade_id}, but {prev.trade_id} ended at {prev.last_trade_id} "
                    f"(expected {prev.last_trade_id + 1}) at {iso(trade.timestamp)} ({label})"
                )
            if trade.timestamp < prev.timestamp:
                raise FatalError(
                    f"out-of-order {label} aggregate trade {trade.trade_id} at {iso(trade.timestamp)}, "
                    f"before {prev.trade_id} at {iso(prev.timestamp)}"
                )
        yield trade
        prev = trade


# -- iteration --------------------------------------------------------------------------------


class RecordSource:
    """Records of a window from planned segments (archive with REST fallback in auto)."""

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

    def records(self, segments: list[Segment]) -> Iterator[Any]:
        """The window's records in order, gap-checked."""
        if not segments:
            return iter(())
        start, end = segments[0].start_ms, segments[-1].end_ms
        raw = (record for segment in segments for record in self._segment(segment))
        if self.data_type.kind is Kind.TRADES:
            return checked_trades(raw, self.label)
        assert self.data_type.interval is not None
        return checked_candles(raw, self.data_type.interval, start, end, self.label)

    def _segment(self, seg: Segment) -> Iterator[Any]:
        trades = self.data_type.kind is Kind.TRADES
        if seg.source == "rest":
            yield from self._rest_trades(seg) if trades else self._rest_candles(seg)
            return
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
            yield from self._rest_trades(seg) if trades else self._rest_candles(seg)
            return
        log.info("archive %s verified", url, extra={"url": url, "bytes": path.stat().st_size})
        try:
            yield from self._archive_rows(seg, url, path, trades)
        finally:
            path.unlink(missing_ok=True)

    @property
    def _interval(self) -> Interval:
        assert self.data_type.interval is not None
        return self.data_type.interval

    # -- archive ------------------------------------------------------------------------------
    def _archive_rows(self, seg: Segment, url: str, path: Any, trades: bool) -> Iterator[Any]:
        lines = self.archive.lines(path, url)
        rows: Iterator[Candle] | Iterator[Trade] = (
            trades_from_csv(self.symbol, lines) if trades else candles_from_csv(self.symbol, self._interval.code, lines)
        )
        field = self.data_type.time_field
        try:
            for n, record in enumerate(rows):
                if n % STOP_CHECK_ROWS == 0:
                    self.hooks.check_stop()
                t = getattr(record, field)
                if t < seg.start_ms:
                    continue
                if t >= seg.end_ms:
                    return  # rows are in time order; the gap check would catch anything else
                yield record
        except RecordError as exc:
            raise FatalError(f"{url}: {exc}") from exc

    # -- REST ---------------------------------------------------------------------------------
    def _rest_candles(self, seg: Segment) -> Iterator[Candle]:
        """Exact pagination: next startTime = last open time + one interval (1M: next month)."""
        interval = self._interval
        cursor = seg.start_ms
        while cursor < seg.end_ms:
            rows = self.rest.klines(self.symbol, interval.code, cursor, seg.end_ms - 1, self.limit)
            if not rows:
                return  # nothing more: the gap check names what is missing
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
                    try:
                        trade = trade_from_rest(self.symbol, obj)
                    except RecordError as exc:
                        raise FatalError(f"Binance aggTrades: {exc}") from exc
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
