"""Fault injection for the Binance replay server.

A fault is a rule: *what* goes wrong (``kind``), *where* (``path_prefix``, plus
``symbol``/``interval`` for gaps) and *how often* (``times``: the next N matching
requests, ``None`` = forever). Rules are kept in order; for the exclusive kinds
(a status code, a delay, a truncation, a bad checksum) the first live matching
rule wins and only that one is consumed; every matching ``gap`` applies.

Kinds (aliases in brackets):

* ``rate_limit`` (``429``): HTTP 429, ``Retry-After``, body code -1003.
* ``ip_ban`` (``418``): HTTP 418, ``Retry-After``, body code -1003 "IP banned until ...".
* ``server_error`` (``5xx``): HTTP ``status`` (500/502/503/504) with a body.
* ``delay``: sleep ``delay_seconds`` before answering (combines with the others).
* ``truncate``: ``mode="cut"`` declares the full ``Content-Length`` but closes the
  connection after ``fraction`` of the body; ``mode="half"`` sends a complete HTTP
  response whose body is only the first ``fraction`` (invalid JSON / half a zip).
* ``bad_checksum``: a ``.CHECKSUM`` is served with a wrong (well-formed) digest.
* ``gap``: klines whose open time is in ``[gap_start_ms, gap_end_ms)`` are dropped,
  on REST and in the archive zips (whose ``.CHECKSUM`` then matches the gapped zip,
  as a hole in the source data would). Times are always milliseconds.
  ``path_prefix="/"`` (default): an exchange gap, missing in both sources;
  ``path_prefix="/data/"``: an incomplete archive, REST still has the rows.
* ``trade_gap``: aggregate trades with id in ``[first_id, last_id]`` are dropped, on REST
  (``/api/v3/aggTrades``) and in the aggTrades zips, as ``path_prefix`` selects.
* ``listing``: ``symbol`` was listed at ``listed_at_ms`` (its first candle / trade) and, with
  ``delisted_at_ms``, stopped trading then (exchangeInfo ``status`` becomes ``symbol_status``,
  default ``BREAK``): nothing outside that span exists on REST or in the archive, and a day's
  archive file without any row left is not published (HTTP 404).
A zip left without any row by ``gap``/``trade_gap``/``listing`` is answered with 404.

Messages below are the verbatim templates of binance-spot-api-docs ``errors.md``
(see ``shared/data/binance/errors/spot-error-codes.from-docs.json``), ``%s`` filled in.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FaultKind = Literal[
    "rate_limit", "ip_ban", "server_error", "delay", "truncate", "bad_checksum", "gap", "trade_gap", "listing"
]

_KIND_ALIASES = {
    "429": "rate_limit",
    "418": "ip_ban",
    "5xx": "server_error",
    "500": "server_error",
    "502": "server_error",
    "503": "server_error",
    "504": "server_error",
}

# -1003 TOO_MANY_REQUESTS, second and third message of errors.md.
MSG_TOO_MUCH_WEIGHT = (
    "Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)
MSG_IP_BANNED = (
    "Way too much request weight used; IP banned until {until_ms}. "
    "Please use WebSocket Streams for live updates to avoid bans."
)
# Bodies for injected 5xx on /api/ paths (codes from errors.md, section 10xx).
SERVER_ERROR_BODIES: dict[int, tuple[int, str]] = {
    500: (-1000, "An unknown error occurred while processing the request."),
    502: (-1001, "Internal error; unable to process your request. Please try again."),
    503: (-1008, "Server is currently overloaded with other requests. Please try again in a few minutes."),
    504: (
        -1007,
        "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
    ),
}

_EXCLUSIVE = ("status", "delay", "truncate", "bad_checksum")


class Fault(BaseModel):
    """One fault rule. ``id`` is assigned by the server when the rule is installed."""

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    path_prefix: str = "/"
    times: int | None = Field(default=None, ge=1, description="next N matching requests; None = forever")
    # rate_limit / ip_ban / server_error
    status: int | None = None
    retry_after: int | None = Field(default=None, ge=0, description="seconds; default 1 for 429/418")
    body: dict[str, Any] | str | None = None
    # delay
    delay_seconds: float = Field(default=0.0, ge=0)
    # truncate
    mode: Literal["cut", "half"] = "cut"
    fraction: float = Field(default=0.5, gt=0, lt=1)
    # gap
    gap_start_ms: int | None = None
    gap_end_ms: int | None = None
    symbol: str | None = None
    interval: str | None = None
    # trade_gap (inclusive aggregate trade ids)
    first_id: int | None = Field(default=None, ge=0)
    last_id: int | None = Field(default=None, ge=0)
    # listing
    listed_at_ms: int | None = None
    delisted_at_ms: int | None = None
    symbol_status: str = "BREAK"
    # bookkeeping (filled by FaultState)
    id: str | None = None
    remaining: int | None = None
    hits: int = 0

    @model_validator(mode="before")
    @classmethod
    def _alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and str(data.get("kind")) in _KIND_ALIASES:
            alias = str(data["kind"])
            data = {**data, "kind": _KIND_ALIASES[alias]}
            if alias.isdigit() and alias.startswith("5"):
                data.setdefault("status", int(alias))
        return data

    @model_validator(mode="after")
    def _check(self) -> Fault:
        if self.kind == "rate_limit":
            self.status = 429
        elif self.kind == "ip_ban":
            self.status = 418
        elif self.kind == "server_error":
            self.status = self.status or 503
            if not 500 <= self.status <= 599:
                raise ValueError("server_error status must be 5xx")
        if self.kind == "gap" and (self.gap_start_ms is None or self.gap_end_ms is None):
            raise ValueError("gap needs gap_start_ms and gap_end_ms (open_time, ms, end exclusive)")
        if self.kind == "trade_gap" and (self.first_id is None or self.last_id is None or self.last_id < self.first_id):
            raise ValueError("trade_gap needs first_id <= last_id (aggregate trade ids, inclusive)")
        if self.kind == "listing" and (self.symbol is None or self.listed_at_ms is None):
            raise ValueError("listing needs symbol and listed_at_ms (first open time, ms)")
        if (
            self.delisted_at_ms is not None
            and self.listed_at_ms is not None
            and self.delisted_at_ms <= self.listed_at_ms
        ):
            raise ValueError("delisted_at_ms must be after listed_at_ms")
        if self.kind == "delay" and self.delay_seconds <= 0:
            raise ValueError("delay needs delay_seconds > 0")
        return self

    @property
    def category(self) -> str:
        return "status" if self.kind in ("rate_limit", "ip_ban", "server_error") else self.kind


class Faults(BaseModel):
    """Start-up / admin configuration: ``{"faults": [...]}``."""

    model_config = ConfigDict(extra="forbid")

    faults: list[Fault] = Field(default_factory=list)

    @classmethod
    def parse(cls, data: Any) -> Faults:
        """Accept ``{"faults": [...]}``, a list of faults, or one fault object."""
        if isinstance(data, Faults):
            return data
        if isinstance(data, list):
            return cls(faults=data)
        if isinstance(data, dict) and "faults" not in data:
            return cls(faults=[data])
        return cls.model_validate(data)


class FaultState:
    """Thread-safe live fault rules plus request statistics for one server."""

    def __init__(self, faults: Faults | list | dict | None = None) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._rules: list[Fault] = []
        self.reset_stats()
        if faults:
            self.add(faults)

    # -- configuration -------------------------------------------------------------------------
    def add(self, faults: Faults | list | dict | Fault) -> list[Fault]:
        parsed = [faults] if isinstance(faults, Fault) else Faults.parse(faults).faults
        added = []
        with self._lock:
            for fault in parsed:
                rule = fault.model_copy(update={"id": f"f{next(self._ids)}", "remaining": fault.times, "hits": 0})
                self._rules.append(rule)
                added.append(rule.model_copy())
        return added

    def set(self, faults: Faults | list | dict | Fault) -> list[Fault]:
        self.clear()
        return self.add(faults)

    def clear(self, fault_id: str | None = None) -> int:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if fault_id is not None and r.id != fault_id]
            return before - len(self._rules)

    def list(self) -> list[Fault]:
        with self._lock:
            return [r.model_copy() for r in self._rules]

    # -- matching ------------------------------------------------------------------------------
    def _consume(self, rule: Fault) -> Fault:
        rule.hits += 1
        self._fault_hits[rule.id] += 1
        self._fault_hits_by_kind[rule.kind] += 1
        if rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining <= 0:
                self._rules.remove(rule)
        return rule.model_copy()

    def take(self, category: str, path: str) -> Fault | None:
        """Consume and return the first live rule of ``category`` matching ``path``."""
        assert category in _EXCLUSIVE
        with self._lock:
            for rule in self._rules:
                if rule.category == category and path.startswith(rule.path_prefix):
                    if category == "bad_checksum" and not path.endswith(".CHECKSUM"):
                        continue
                    return self._consume(rule)
        return None

    def take_gaps(self, path: str, symbol: str, interval: str) -> list[tuple[int, int]]:
        """Consume every gap rule matching the request; return ``[(start_ms, end_ms), ...]``."""
        out = []
        with self._lock:
            for rule in list(self._rules):
                if (
                    rule.kind == "gap"
                    and path.startswith(rule.path_prefix)
                    and rule.symbol in (None, symbol)
                    and rule.interval in (None, interval)
                ):
                    self._consume(rule)
                    out.append((rule.gap_start_ms, rule.gap_end_ms))
        return out

    def take_trade_gaps(self, path: str, symbol: str) -> list[tuple[int, int]]:
        """Consume every trade_gap rule matching the request; return ``[(first_id, last_id), ...]``."""
        out = []
        with self._lock:
            for rule in list(self._rules):
                if rule.kind == "trade_gap" and path.startswith(rule.path_prefix) and rule.symbol in (None, symbol):
                    self._consume(rule)
                    assert rule.first_id is not None and rule.last_id is not None
                    out.append((rule.first_id, rule.last_id))
        return out

    def listing(self, symbol: str) -> Fault | None:
        """The listing rule of ``symbol`` (not consumed: a listing is a fact, not an event)."""
        with self._lock:
            for rule in self._rules:
                if rule.kind == "listing" and rule.symbol == symbol:
                    rule.hits += 1
                    return rule.model_copy()
        return None

    def outside_listing(self, symbol: str) -> list[tuple[int, int]]:
        """Time ranges ``[start, end)`` the listing rule of ``symbol`` says hold no data."""
        rule = self.listing(symbol)
        if rule is None:
            return []
        assert rule.listed_at_ms is not None
        spans = [(0, rule.listed_at_ms)]
        if rule.delisted_at_ms is not None:
            spans.append((rule.delisted_at_ms, 2**62))
        return spans

    # -- statistics ----------------------------------------------------------------------------
    def reset_stats(self) -> None:
        with self._lock:
            self._requests: Counter[str] = Counter()
            self._statuses: Counter[str] = Counter()
            self._fault_hits: Counter[str] = Counter()
            self._fault_hits_by_kind: Counter[str] = Counter()

    def record_request(self, path: str) -> None:
        with self._lock:
            self._requests[path] += 1

    def record_status(self, status: int) -> None:
        with self._lock:
            self._statuses[str(status)] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total_requests": sum(self._requests.values()),
                "requests": dict(self._requests),
                "statuses": dict(self._statuses),
                "fault_hits": dict(self._fault_hits),
                "fault_hits_by_kind": dict(self._fault_hits_by_kind),
                "active_faults": [r.model_dump(exclude_none=True) for r in self._rules],
            }
