"""Data catalog of the Binance replay server: finds the real data files, parses them lazily.

Data roots are directories laid out like ``shared/data/binance`` (see ``PROVENANCE.md``
there)::

    <root>/<market>/klines/<interval>/<SYMBOL>-<interval>-<YYYY-MM-DD>.zip   (+ .zip.CHECKSUM)
    <root>/<market>/klines/<interval>/<SYMBOL>-<interval>-<YYYY-MM>.csv      (unzipped monthly file)
    <root>/<market>/klines/<interval>/<SYMBOL>-<interval>-<YYYY-MM>.zip      (monthly zip)
    <root>/<market>/aggTrades/<SYMBOL>-aggTrades-<YYYY-MM-DD>.zip          (+ .zip.CHECKSUM)
                                  (a month whose every day is here is also served as a monthly zip)
    <root>/rest-responses/api_v3_exchangeInfo*.json                        (recorded response)

with ``<market>`` one of ``spot``, ``futures-um``, ``futures-cm``. Several roots may hold
the same file (the repo's offline copy and the shared directory): the first root wins.

Nothing is read at construction except directory listings; each file is parsed on first
use and cached. Spot files from 2025 on carry microsecond timestamps; REST rows are always
converted to milliseconds, archive bytes are served as published.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import os
import re
import threading
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from streamforge.stack.paths import REPO_ROOT

REPO_DATA_DIR = Path(__file__).with_name("data") / "binance"

# Market directory -> data.binance.vision prefix.
MARKETS: dict[str, str] = {"spot": "spot", "futures-um": "futures/um", "futures-cm": "futures/cm"}
# REST symbol resolution order when two markets hold the same symbol.
MARKET_PRECEDENCE = ("spot", "futures-um", "futures-cm")

INTERVAL_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": 2_678_400_000,
}
DAY_MS = 86_400_000
_US_THRESHOLD = 10**14  # ms timestamps stay below this until year 5138; µs ones since 1973 exceed it

_KLINE_DAILY = re.compile(r"^(?P<symbol>[A-Z0-9_]+)-(?P<interval>\d+[smhdwM])-(?P<period>\d{4}-\d{2}-\d{2})\.zip$")
_KLINE_MONTHLY = re.compile(
    r"^(?P<symbol>[A-Z0-9_]+)-(?P<interval>\d+[smhdwM])-(?P<period>\d{4}-\d{2})\.(?P<ext>zip|csv)$"
)
_AGG_DAILY = re.compile(r"^(?P<symbol>[A-Z0-9_]+)-aggTrades-(?P<period>\d{4}-\d{2}-\d{2})\.zip$")


def shared_data_dir() -> Path:
    """``$STREAMFORGE_SHARED_DATA`` or ``../shared/data`` next to the repository root."""
    env = os.environ.get("STREAMFORGE_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def default_data_dirs() -> list[Path]:
    """The repo's offline copy first, then the shared data directory (existing ones only)."""
    return [d for d in (REPO_DATA_DIR, shared_data_dir() / "binance") if d.is_dir()]


def normalize_data_dir(path: str | os.PathLike[str]) -> Path:
    """Accept either a ``binance`` root or a directory that contains one."""
    p = Path(path)
    return p / "binance" if (p / "binance").is_dir() and not (p / "spot").is_dir() else p


def to_ms(ts: int) -> int:
    return ts // 1000 if ts >= _US_THRESHOLD else ts


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def checksum_text(digest: str, zip_name: str) -> bytes:
    """``.CHECKSUM`` body as published: ``<sha256>  <name>`` without a trailing newline."""
    return f"{digest}  {zip_name}".encode()


def build_zip(inner_name: str, payload: bytes, when: datetime) -> bytes:
    """Deterministic one-member zip (same bytes for the same input, so checksums are stable)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo(inner_name, date_time=when.timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        info.create_system = 3  # Unix, like the published files
        info.external_attr = 0o644 << 16
        zf.writestr(info, payload)
    return buf.getvalue()


@dataclass(frozen=True)
class KlineRow:
    open_ms: int
    rest: tuple[Any, ...]  # the 12-element REST array (ms timestamps, numbers as strings)
    line: bytes  # the original CSV line, terminator included (for archive synthesis)


@dataclass(frozen=True)
class Source:
    """One data file on disk."""

    market: str
    dataset: str  # "klines" | "aggTrades"
    symbol: str
    interval: str | None
    period: str  # YYYY-MM-DD (daily) or YYYY-MM (monthly)
    path: Path
    checksum_path: Path | None

    @property
    def monthly(self) -> bool:
        return len(self.period) == 7

    @property
    def days(self) -> list[date]:
        if not self.monthly:
            return [date.fromisoformat(self.period)]
        first = date.fromisoformat(self.period + "-01")
        out, d = [], first
        while d.month == first.month:
            out.append(d)
            d += timedelta(days=1)
        return out


@dataclass
class AggDay:
    ids: list[int]
    times: list[int]
    rows: list[tuple[str, str, int, int, bool, bool]]  # p, q, f, l, m, M


@dataclass(frozen=True)
class Archive:
    name: str
    body: bytes
    checksum: bytes


@dataclass
class Catalog:
    data_dirs: Sequence[Path] = field(default_factory=default_data_dirs)

    def __post_init__(self) -> None:
        self.data_dirs = [normalize_data_dir(d) for d in self.data_dirs]
        self._lock = threading.RLock()
        self._line_cache: dict[Path, list[bytes]] = {}
        self._kline_cache: dict[Path, list[KlineRow]] = {}
        self._agg_cache: dict[Path, AggDay] = {}
        self._bytes_cache: dict[Path, bytes] = {}
        # (market, symbol, interval, YYYY-MM-DD) -> source holding that day (daily zip preferred)
        self.kline_days: dict[tuple[str, str, str, str], Source] = {}
        # (market, symbol, interval, YYYY-MM) -> monthly source
        self.kline_months: dict[tuple[str, str, str, str], Source] = {}
        # (market, symbol, YYYY-MM-DD) -> daily aggTrades source
        self.agg_days: dict[tuple[str, str, str], Source] = {}
        self.exchange_info_path: Path | None = None
        self._scan()

    # -- discovery -----------------------------------------------------------------------------
    def _scan(self) -> None:
        monthly_days: dict[tuple[str, str, str, str], Source] = {}
        for root in self.data_dirs:
            if not root.is_dir():
                continue
            for dirpath, _dirs, files in sorted(os.walk(root)):
                rel = Path(dirpath).relative_to(root).parts
                if rel[:1] == ("rest-responses",) and self.exchange_info_path is None:
                    info = sorted(f for f in files if f.startswith("api_v3_exchangeInfo") and f.endswith(".json"))
                    if info:
                        self.exchange_info_path = Path(dirpath) / info[0]
                    continue
                if len(rel) < 2 or rel[0] not in MARKETS:
                    continue
                market, dataset = rel[0], rel[1]
                for name in sorted(files):
                    self._register(market, dataset, Path(dirpath), name, monthly_days)
        for key, src in monthly_days.items():
            self.kline_days.setdefault(key, src)

    def _register(
        self,
        market: str,
        dataset: str,
        folder: Path,
        name: str,
        monthly_days: dict[tuple[str, str, str, str], Source],
    ) -> None:
        checksum = folder / (name + ".CHECKSUM")
        checksum_path = checksum if checksum.is_file() else None
        if dataset == "klines":
            if m := _KLINE_DAILY.match(name):
                src = Source(market, "klines", m["symbol"], m["interval"], m["period"], folder / name, checksum_path)
                self.kline_days.setdefault((market, src.symbol, src.interval, src.period), src)
            elif m := _KLINE_MONTHLY.match(name):
                src = Source(market, "klines", m["symbol"], m["interval"], m["period"], folder / name, checksum_path)
                key = (market, src.symbol, src.interval, src.period)
                if key in self.kline_months:
                    return
                self.kline_months[key] = src
                # A monthly file also backs every day of its month (REST and synthesised daily zips),
                # unless a real daily zip for that day exists.
                for day in src.days:
                    monthly_days.setdefault((market, src.symbol, src.interval, day.isoformat()), src)
        elif dataset == "aggTrades" and (m := _AGG_DAILY.match(name)):
            src = Source(market, "aggTrades", m["symbol"], None, m["period"], folder / name, checksum_path)
            self.agg_days.setdefault((market, src.symbol, src.period), src)

    def symbols(self) -> list[str]:
        found = {k[1] for k in self.kline_days} | {k[1] for k in self.agg_days}
        return sorted(found)

    def has_symbol(self, symbol: str) -> bool:
        return symbol in set(self.symbols())

    def _market_for(self, symbol: str, keys: Iterable[tuple[str, ...]]) -> str | None:
        markets = {k[0] for k in keys if k[1] == symbol}
        return next((m for m in MARKET_PRECEDENCE if m in markets), None)

    # -- raw file access -----------------------------------------------------------------------
    def file_bytes(self, path: Path) -> bytes:
        with self._lock:
            if path not in self._bytes_cache:
                self._bytes_cache[path] = path.read_bytes()
            return self._bytes_cache[path]

    def _lines(self, src: Source) -> list[bytes]:
        """Data lines of a source (header dropped), terminators kept."""
        with self._lock:
            if src.path in self._line_cache:
                return self._line_cache[src.path]
        if src.path.suffix == ".zip":
            with zipfile.ZipFile(src.path) as zf:
                member = next(n for n in zf.namelist() if n.endswith(".csv"))
                raw = zf.read(member)
        else:
            raw = src.path.read_bytes()
        lines = [ln for ln in raw.splitlines(keepends=True) if ln.strip()]
        if lines and not lines[0][:1].isdigit():  # futures files have a header row
            lines = lines[1:]
        with self._lock:
            self._line_cache[src.path] = lines
        return lines

    # -- klines --------------------------------------------------------------------------------
    def _kline_rows(self, src: Source) -> list[KlineRow]:
        with self._lock:
            cached = self._kline_cache.get(src.path)
        if cached is not None:
            return cached
        rows = []
        for line in self._lines(src):
            f = line.decode("ascii").strip().split(",")
            open_ms, close_ms = to_ms(int(f[0])), to_ms(int(f[6]))
            rest = (open_ms, f[1], f[2], f[3], f[4], f[5], close_ms, f[7], int(f[8]), f[9], f[10], "0")
            rows.append(KlineRow(open_ms, rest, line))
        rows.sort(key=lambda r: r.open_ms)
        with self._lock:
            self._kline_cache[src.path] = rows
        return rows

    def _day_rows(self, src: Source, day: date) -> list[KlineRow]:
        rows = self._kline_rows(src)
        if not src.monthly:
            return rows
        start = day_start_ms(day)
        opens = [r.open_ms for r in rows]
        return rows[bisect.bisect_left(opens, start) : bisect.bisect_left(opens, start + DAY_MS)]

    def _kline_series(self, symbol: str, interval: str) -> list[tuple[int, Source, date]]:
        market = self._market_for(symbol, [k for k in self.kline_days if k[2] == interval])
        days = [
            (day_start_ms(date.fromisoformat(k[3])), src, date.fromisoformat(k[3]))
            for k, src in self.kline_days.items()
            if k[:3] == (market, symbol, interval)
        ]
        return sorted(days, key=lambda t: t[0])

    def klines(
        self,
        symbol: str,
        interval: str,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        gaps: Sequence[tuple[int, int]] = (),
    ) -> list[tuple[Any, ...]]:
        """Binance ``/api/v3/klines`` selection: open_time in [start, end] (both inclusive)."""
        series = self._kline_series(symbol, interval)

        def keep(row: KlineRow) -> bool:
            if start_ms is not None and row.open_ms < start_ms:
                return False
            if end_ms is not None and row.open_ms > end_ms:
                return False
            return not any(a <= row.open_ms < b for a, b in gaps)

        out: list[tuple[Any, ...]] = []
        if start_ms is not None:  # ascending from startTime
            for day_ms, src, day in series:
                if day_ms + DAY_MS <= start_ms:
                    continue
                if end_ms is not None and day_ms > end_ms:
                    break
                for row in self._day_rows(src, day):
                    if keep(row):
                        out.append(row.rest)
                        if len(out) >= limit:
                            return out
            return out
        for day_ms, src, day in reversed(series):  # the most recent `limit` (up to endTime)
            if end_ms is not None and day_ms > end_ms:
                continue
            for row in reversed(self._day_rows(src, day)):
                if keep(row):
                    out.append(row.rest)
                    if len(out) >= limit:
                        return out[::-1]
        return out[::-1]

    def kline_archive(
        self, market: str, symbol: str, interval: str, period: str, gaps: Sequence[tuple[int, int]] = ()
    ) -> Archive | None:
        """Daily (``YYYY-MM-DD``) or monthly (``YYYY-MM``) kline zip in the data.binance.vision layout.

        Original zip bytes are served byte-for-byte. Days backed by an unzipped monthly CSV get a
        zip synthesised from that day's original CSV lines (deterministic, checksum computed), so
        the archive layout also covers e.g. BTCUSDT 1h 2024-08. A ``gap`` re-synthesises the zip
        without the dropped lines.
        """
        name = f"{symbol}-{interval}-{period}.zip"
        if len(period) == 7:
            src = self.kline_months.get((market, symbol, interval, period))
            days = src.days if src else []
        else:
            src = self.kline_days.get((market, symbol, interval, period))
            days = [date.fromisoformat(period)]
        if src is None:
            return None
        if not gaps and src.path.suffix == ".zip" and src.path.name == name:  # as published, unparsed
            body = self.file_bytes(src.path)
            checksum = (
                self.file_bytes(src.checksum_path)
                if src.checksum_path
                else checksum_text(hashlib.sha256(body).hexdigest(), name)
            )
            return Archive(name, body, checksum)
        rows = [r for d in days for r in self._day_rows(src, d)]
        kept = [r for r in rows if not any(a <= r.open_ms < b for a, b in gaps)]
        if rows and not kept:
            return None  # data.binance.vision publishes no file for a period without data
        if src.path.suffix == ".zip" and src.path.name == name and len(kept) == len(rows):
            body = self.file_bytes(src.path)
            checksum = (
                self.file_bytes(src.checksum_path)
                if src.checksum_path
                else checksum_text(hashlib.sha256(body).hexdigest(), name)
            )
            return Archive(name, body, checksum)
        when = datetime.fromisoformat(days[-1].isoformat()) + timedelta(days=1)
        body = build_zip(name[:-4] + ".csv", b"".join(r.line for r in kept), when)
        return Archive(name, body, checksum_text(hashlib.sha256(body).hexdigest(), name))

    # -- aggTrades -----------------------------------------------------------------------------
    def _agg_day(self, src: Source) -> AggDay:
        with self._lock:
            cached = self._agg_cache.get(src.path)
        if cached is not None:
            return cached
        ids, times, rows = [], [], []
        for line in self._lines(src):
            cells = line.decode("ascii").strip().split(",")
            a, p, q, f, l_, t, m = cells[:7]
            # Spot files carry is_best_match as an 8th column; futures files have none ("M": true).
            best = cells[7].strip().lower() == "true" if len(cells) > 7 else True
            ids.append(int(a))
            times.append(to_ms(int(t)))
            rows.append((p, q, int(f), int(l_), m.strip().lower() == "true", best))
        day = AggDay(ids, times, rows)
        with self._lock:
            self._agg_cache[src.path] = day
        return day

    def _agg_series(self, symbol: str) -> list[tuple[int, Source]]:
        market = self._market_for(symbol, self.agg_days)
        return sorted(
            (
                (day_start_ms(date.fromisoformat(k[2])), src)
                for k, src in self.agg_days.items()
                if k[:2] == (market, symbol)
            ),
            key=lambda t: t[0],
        )

    @staticmethod
    def _agg_obj(day: AggDay, i: int) -> dict[str, Any]:
        p, q, f, l_, m, best = day.rows[i]
        return {"a": day.ids[i], "p": p, "q": q, "f": f, "l": l_, "T": day.times[i], "m": m, "M": best}

    def agg_trades(
        self,
        symbol: str,
        from_id: int | None,
        start_ms: int | None,
        end_ms: int | None,
        limit: int,
        time_gaps: Sequence[tuple[int, int]] = (),
        id_gaps: Sequence[tuple[int, int]] = (),
    ) -> list[dict[str, Any]]:
        """Binance ``/api/v3/aggTrades``; trades in ``time_gaps`` ([start, end) ms) or ``id_gaps``
        ([first, last] ids) do not exist."""
        series = self._agg_series(symbol)
        out: list[dict[str, Any]] = []

        def dropped(day: AggDay, j: int) -> bool:
            return any(a <= day.ids[j] <= b for a, b in id_gaps) or any(a <= day.times[j] < b for a, b in time_gaps)

        def ascending(first_index: Iterator[tuple[AggDay, int]]) -> list[dict[str, Any]]:
            for day, i in first_index:
                for j in range(i, len(day.ids)):
                    if end_ms is not None and day.times[j] > end_ms:
                        return out
                    if dropped(day, j):
                        continue
                    out.append(self._agg_obj(day, j))
                    if len(out) >= limit:
                        return out
            return out

        if from_id is not None:

            def by_id() -> Iterator[tuple[AggDay, int]]:
                for _ms, src in series:
                    day = self._agg_day(src)
                    if day.ids and day.ids[-1] >= from_id:
                        yield day, bisect.bisect_left(day.ids, from_id)

            return ascending(by_id())
        if start_ms is not None:

            def by_time() -> Iterator[tuple[AggDay, int]]:
                for day_ms, src in series:
                    if day_ms + DAY_MS <= start_ms:
                        continue
                    if end_ms is not None and day_ms > end_ms:
                        return
                    day = self._agg_day(src)
                    yield day, bisect.bisect_left(day.times, start_ms)

            return ascending(by_time())
        for day_ms, src in reversed(series):  # most recent `limit`, up to endTime if given
            if end_ms is not None and day_ms > end_ms:
                continue
            day = self._agg_day(src)
            stop = len(day.ids) if end_ms is None else bisect.bisect_right(day.times, end_ms)
            for j in range(stop - 1, -1, -1):
                if dropped(day, j):
                    continue
                out.append(self._agg_obj(day, j))
                if len(out) >= limit:
                    return out[::-1]
        return out[::-1]

    def agg_month_archive(self, market: str, symbol: str, month: str) -> Archive | None:
        """A monthly aggTrades zip (``YYYY-MM``), built from the month's daily files in day order.

        Served only when the catalog holds every day of the month, as data.binance.vision
        publishes a month once it is complete.
        """
        first = date.fromisoformat(month + "-01")
        days = [first + timedelta(days=i) for i in range(31) if (first + timedelta(days=i)).month == first.month]
        sources = [self.agg_days.get((market, symbol, d.isoformat())) for d in days]
        if any(src is None for src in sources):
            return None
        name = f"{symbol}-aggTrades-{month}.zip"
        payload = b"".join(line for src in sources if src is not None for line in self._lines(src))
        when = datetime.fromisoformat(days[-1].isoformat()) + timedelta(days=1)
        body = build_zip(name[:-4] + ".csv", payload, when)
        return Archive(name, body, checksum_text(hashlib.sha256(body).hexdigest(), name))

    def agg_archive(
        self,
        market: str,
        symbol: str,
        period: str,
        time_gaps: Sequence[tuple[int, int]] = (),
        id_gaps: Sequence[tuple[int, int]] = (),
    ) -> Archive | None:
        src = self.agg_days.get((market, symbol, period))
        if src is None:
            return None
        name = f"{symbol}-aggTrades-{period}.zip"
        if time_gaps or id_gaps:  # re-synthesise the zip without the dropped rows
            day = self._agg_day(src)
            lines = self._lines(src)
            kept = [
                line
                for j, line in enumerate(lines)
                if not any(a <= day.ids[j] <= b for a, b in id_gaps)
                and not any(a <= day.times[j] < b for a, b in time_gaps)
            ]
            if len(kept) != len(lines):
                if not kept:
                    return None
                when = datetime.fromisoformat(period) + timedelta(days=1)
                body = build_zip(name[:-4] + ".csv", b"".join(kept), when)
                return Archive(name, body, checksum_text(hashlib.sha256(body).hexdigest(), name))
        body = self.file_bytes(src.path)
        checksum = (
            self.file_bytes(src.checksum_path)
            if src.checksum_path
            else checksum_text(hashlib.sha256(body).hexdigest(), name)
        )
        return Archive(name, body, checksum)

    # -- exchangeInfo --------------------------------------------------------------------------
    def exchange_info_template(self) -> dict[str, Any] | None:
        if self.exchange_info_path is None:
            return None
        return json.loads(self.file_bytes(self.exchange_info_path))
