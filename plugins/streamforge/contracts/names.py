"""Every name StreamForge derives (ARCHITECTURE §2): pure functions, shared by DAGs and workers.

A run's identity is (symbol, data type, window start, h6). `h6` hashes (dag_id, run_id,
attempt), so it is stable while one attempt runs and changes on a re-run: events of an
earlier attempt can never be taken for this one.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

KAFKA_TOPIC_MAX = 249
ARANGO_COLLECTION_MAX_BYTES = 256
K8S_NAME_MAX = 63

_KAFKA_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_ARANGO_COLLECTION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_K8S_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Binance spot symbols are upper-case letters and digits; COIN-M futures add `_` (BTCUSD_PERP).
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}(_[A-Z0-9]{2,12})?$")
_H6_RE = re.compile(r"^[0-9a-f]{6}$")


class InvalidName(ValueError):
    """A name (symbol, type, topic, collection…) is not legal; the message says why."""


class Component(StrEnum):
    LOADER = "loader"
    ARANGO_CANDLES = "arango-candles"
    ARANGO_TRADES = "arango-trades"
    DUMMY = "dummy-service"
    DEBUG_PRODUCER = "debug-producer"

    @property
    def module(self) -> str:
        """The worker entrypoint module (`python -m …`), the same in images and local runs."""
        return _COMPONENT_MODULES[self]


_COMPONENT_MODULES = {
    Component.LOADER: "streamforge_workers.loader",
    Component.ARANGO_CANDLES: "streamforge_workers.sink",
    Component.ARANGO_TRADES: "streamforge_workers.sink",
    Component.DUMMY: "streamforge_workers.dummy_service",
    Component.DEBUG_PRODUCER: "streamforge_workers.debug_producer",
}


class Layout(StrEnum):
    """How a pipeline lays out collections: one per window day, or one for everything."""

    DAILY = "daily"
    SINGLE = "single"


class Kind(StrEnum):
    CANDLES = "candles"
    TRADES = "trades"


@dataclass(frozen=True)
class Interval:
    """A Binance kline interval. `ms` is None for the calendar month (`1M`)."""

    code: str
    ms: int | None
    # Open times sit on a grid `anchor_ms + k * ms`; weekly candles open on Mondays.
    anchor_ms: int = 0

    def open_times(self, start_ms: int, end_ms: int) -> range | list[int]:
        """The candle open times in [start_ms, end_ms) — what a complete window holds."""
        if self.ms is not None:
            first = start_ms + (-(start_ms - self.anchor_ms)) % self.ms
            return range(first, end_ms, self.ms)
        times: list[int] = []
        month = datetime.fromtimestamp(start_ms / 1000, UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        while (t := int(month.timestamp() * 1000)) < end_ms:
            if t >= start_ms:
                times.append(t)
            days = calendar.monthrange(month.year, month.month)[1]
            month = month + timedelta(days=days)
        return times

    def close_time(self, open_time_ms: int) -> int:
        """Binance's close time: the last millisecond of the candle."""
        if self.ms is not None:
            return open_time_ms + self.ms - 1
        start = datetime.fromtimestamp(open_time_ms / 1000, UTC)
        days = calendar.monthrange(start.year, start.month)[1]
        return open_time_ms + days * 86_400_000 - 1


_MIN, _HOUR, _DAY = 60_000, 3_600_000, 86_400_000
# The longest calendar month: the window of a monthly DAG's run (orchestration/monthly.py).
MONTH_WINDOW = timedelta(days=31)
INTERVALS: dict[str, Interval] = {
    i.code: i
    for i in (
        Interval("1s", 1_000),
        Interval("1m", _MIN),
        Interval("3m", 3 * _MIN),
        Interval("5m", 5 * _MIN),
        Interval("15m", 15 * _MIN),
        Interval("30m", 30 * _MIN),
        Interval("1h", _HOUR),
        Interval("2h", 2 * _HOUR),
        Interval("4h", 4 * _HOUR),
        Interval("6h", 6 * _HOUR),
        Interval("8h", 8 * _HOUR),
        Interval("12h", 12 * _HOUR),
        Interval("1d", _DAY),
        Interval("3d", 3 * _DAY),
        Interval("1w", 7 * _DAY, anchor_ms=4 * _DAY),  # 1970-01-05 was a Monday
        Interval("1M", None),
    )
}


@dataclass(frozen=True)
class DataType:
    """`api_candles_{interval}` or `api_trades` (ARCHITECTURE §2)."""

    name: str
    kind: Kind
    interval: Interval | None

    @classmethod
    def parse(cls, value: str) -> DataType:
        if value == "api_trades":
            return cls(value, Kind.TRADES, None)
        prefix = "api_candles_"
        if value.startswith(prefix) and value[len(prefix) :] in INTERVALS:
            return cls(value, Kind.CANDLES, INTERVALS[value[len(prefix) :]])
        known = ", ".join(f"api_candles_{i}" for i in INTERVALS)
        raise InvalidName(f"unknown data type {value!r}: expected api_trades or one of {known}")

    @property
    def sink(self) -> Component:
        return Component.ARANGO_CANDLES if self.kind is Kind.CANDLES else Component.ARANGO_TRADES

    @property
    def time_field(self) -> str:
        """The record attribute that places a record in a window."""
        return "open_time" if self.kind is Kind.CANDLES else "timestamp"

    @property
    def id_field(self) -> str:
        return "open_time" if self.kind is Kind.CANDLES else "trade_id"

    @property
    def max_window(self) -> timedelta:
        """Largest window one run may load: keeps a run's topic and memory bounded."""
        if self.kind is Kind.TRADES:
            return timedelta(days=1)
        assert self.interval is not None
        if self.interval.ms is None:
            return timedelta(days=366 * 5)
        # at most ~1M candles, at most one year
        return min(timedelta(milliseconds=self.interval.ms * 1_000_000), timedelta(days=366))

    @property
    def max_run_window(self) -> timedelta:
        """Largest window any run may load: `max_window`, or one calendar month (a monthly DAG's run)."""
        return max(self.max_window, MONTH_WINDOW)


def validate_symbol(symbol: str) -> str:
    """Return the upper-case symbol or raise with what is wrong."""
    upper = symbol.upper()
    if not _SYMBOL_RE.match(upper):
        raise InvalidName(
            f"illegal symbol {symbol!r}: expected 2-20 letters/digits as Binance lists them "
            "(e.g. BTCUSDT), optionally with a _SUFFIX (e.g. BTCUSD_PERP)"
        )
    return upper


def h6(dag_id: str, run_id: str, attempt: int) -> str:
    """6 hex chars identifying one attempt of one DAG run."""
    digest = hashlib.sha256(f"{dag_id}\x1f{run_id}\x1f{attempt}".encode()).hexdigest()
    return digest[:6]


def _check_kafka_topic(name: str) -> str:
    if not (0 < len(name) <= KAFKA_TOPIC_MAX) or not _KAFKA_TOPIC_RE.match(name) or name in {".", ".."}:
        raise InvalidName(f"illegal Kafka topic name {name!r}: [A-Za-z0-9._-], 1..{KAFKA_TOPIC_MAX} chars")
    return name


def _check_arango_collection(name: str) -> str:
    if not _ARANGO_COLLECTION_RE.match(name) or len(name.encode()) > ARANGO_COLLECTION_MAX_BYTES:
        raise InvalidName(
            f"illegal ArangoDB collection name {name!r}: a letter first, then [A-Za-z0-9_-], "
            f"at most {ARANGO_COLLECTION_MAX_BYTES} bytes"
        )
    return name


def _check_k8s_name(name: str) -> str:
    if len(name) > K8S_NAME_MAX or not _K8S_NAME_RE.match(name):
        raise InvalidName(f"illegal Kubernetes name {name!r}: DNS-1123 label, at most {K8S_NAME_MAX} chars")
    return name


def dag_id(symbol: str, data_type: str) -> str:
    return f"streamforge__{validate_symbol(symbol).lower()}__{DataType.parse(data_type).name}"


@dataclass(frozen=True)
class RunNames:
    """All names of one run attempt (ARCHITECTURE §2), derived once and passed around."""

    symbol: str  # upper case, as in messages
    data_type: str
    window_start: datetime
    h6: str
    layout: Layout = Layout.DAILY

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbol", validate_symbol(self.symbol))
        DataType.parse(self.data_type)
        if not _H6_RE.match(self.h6):
            raise InvalidName(f"illegal h6 {self.h6!r}: 6 lower-case hex chars")
        if self.window_start.tzinfo is None:
            raise InvalidName("window_start must be timezone-aware (UTC)")
        # Validate every derived name now, so a bad input fails before anything is created.
        _check_kafka_topic(self.data_topic)
        _check_kafka_topic(self.queue_id)
        _check_arango_collection(self.collection)
        for component in Component:
            _check_k8s_name(self.pod_name(component))

    @property
    def _sym(self) -> str:
        return self.symbol.lower()

    @property
    def _day(self) -> datetime:
        return self.window_start.astimezone(UTC)

    @property
    def queue_id(self) -> str:
        return f"wf-{self._sym}-{self.data_type}-{self._day:%Y%m%d}-{self.h6}"

    @property
    def data_topic(self) -> str:
        return f"{self.queue_id}-data"

    @property
    def collection(self) -> str:
        if self.layout is Layout.SINGLE:
            return f"{self._sym}_{self.data_type}"
        return f"{self._sym}_{self.data_type}_{self._day:%Y_%m_%d}"

    @property
    def dag_id(self) -> str:
        return dag_id(self.symbol, self.data_type)

    def telemetry_id(self, component: Component | str, role: str | None = None) -> str:
        """`{component}__{h6}`; `{component}-{role}__{h6}` when a role must be named (see worker_ids)."""
        return f"{_worker(component, role)}__{self.h6}"

    def pod_name(self, component: Component | str, role: str | None = None) -> str:
        return _check_k8s_name(f"{_worker(component, role)}-{self._sym.replace('_', '-')}-{self.h6}")

    def worker_ids(self, components: Mapping[str, Component | str]) -> dict[str, tuple[str, str]]:
        """(telemetry producer id, pod name) per role of `components` (role -> component).

        A component that fills several roles (a test running dummy-service as loader and sink)
        gets the role in its names: the outcome tells the workers apart by producer id, and two
        pods of one run cannot share a name.
        """
        uses = Counter(Component(c) for c in components.values())
        result = {}
        for role, component in components.items():
            qualifier = str(role) if uses[Component(component)] > 1 else None
            result[str(role)] = (self.telemetry_id(component, qualifier), self.pod_name(component, qualifier))
        return result


def _worker(component: Component | str, role: str | None) -> str:
    return Component(component).value + (f"-{role}" if role else "")


def collection_name(symbol: str, data_type: str, day: datetime, layout: Layout = Layout.DAILY) -> str:
    """The collection a day of data lands in (used by verification and tests)."""
    return RunNames(symbol, data_type, day, "000000", layout).collection


ONE_DAY = timedelta(days=1)


def routes_per_day(start: datetime, end: datetime, layout: Layout) -> bool:
    """Whether a window's documents spread over one collection per UTC day (ARCHITECTURE §4).

    Under the daily layout a window longer than a day (a monthly run, a long backfill window)
    puts each record into its own day's collection, exactly where the daily run of that day
    puts it; the sink then gets no COLLECTION_NAME and routes each record by its time field.
    A window of at most a day keeps the one collection of its start day.
    """
    return layout is Layout.DAILY and end - start > ONE_DAY


@dataclass(frozen=True)
class WindowPart:
    """The part of a window stored in one collection: [start, end) of `collection`."""

    collection: str
    start: datetime
    end: datetime


def window_collections(
    symbol: str, data_type: str, start: datetime, end: datetime, layout: Layout = Layout.DAILY
) -> list[WindowPart]:
    """Every collection a window's documents land in, in time order, with the part each holds."""
    if not routes_per_day(start, end, layout):
        return [WindowPart(collection_name(symbol, data_type, start, layout), start, end)]
    parts = []
    day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        name = collection_name(symbol, data_type, day, layout)
        parts.append(WindowPart(name, max(start, day), min(end, day + ONE_DAY)))
        day += ONE_DAY
    return parts
