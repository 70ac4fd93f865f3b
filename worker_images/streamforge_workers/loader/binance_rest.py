"""Binance REST client: /api/v3/klines and /api/v3/aggTrades, polite and persistent.

- Weight budget: the `X-MBX-USED-WEIGHT-1M` header of each response tells how much of the
  per-IP minute budget is used; when the next request would pass `weight_budget`, wait
  until the minute rolls over.
- 429 / 418: wait `Retry-After` seconds (no header: until the next minute); a 418 ban longer
  than `max_wait_seconds` fails at once. A long run of them fails too.
- 5xx, timeouts, connection errors, truncated or invalid bodies: bounded exponential retries.
- Any other 4xx (bad symbol, bad parameter) is a clear error at once.
Every request runs through Hooks.call, so a stop never waits for a slow response.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx

from streamforge_workers.loader.hooks import Hooks
from streamforge_workers.loader.metrics import HTTP_RETRIES, REQUESTS, USED_WEIGHT
from streamforge_workers.loader.retry import Transient, classify, with_retries
from streamforge_workers.runtime.worker import FatalError

KLINES_PATH, AGG_TRADES_PATH = "/api/v3/klines", "/api/v3/aggTrades"
# Request weights of the current spot docs (klines 2 at any limit, aggTrades 4).
WEIGHTS = {KLINES_PATH: 2, AGG_TRADES_PATH: 4}
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
MAX_LIMIT = 1000
# Consecutive 429/418 answers to one request before giving up.
MAX_RATE_LIMITED = 10
# Margin after the minute boundary, for clock skew between us and Binance.
MINUTE_MARGIN = 0.5
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class WeightLimiter:
    """Tracks the request weight used in the current (wall-clock) minute."""

    def __init__(self, budget: int, clock: Callable[[], float] = time.time) -> None:
        self.budget = budget
        self.clock = clock
        self.used = 0
        self._minute = -1

    def _roll(self) -> float:
        now = self.clock()
        minute = int(now // 60)
        if minute != self._minute:
            self._minute, self.used = minute, 0
        return now

    def delay(self, weight: int) -> float:
        """Seconds to wait before a request of `weight` fits the budget (0: send now)."""
        now = self._roll()
        if self.used + weight <= self.budget:
            return 0.0
        return 60.0 - now % 60 + MINUTE_MARGIN

    def spend(self, weight: int) -> None:
        self._roll()
        self.used += weight  # an estimate until the response's header corrects it

    def observe(self, header: str | None) -> None:
        if header is None:
            return
        try:
            used = int(header)
        except ValueError:
            return
        self._roll()
        self.used = used
        USED_WEIGHT.set(used)

    def reset(self) -> None:
        """After sitting out a 429/418 as Binance asked, its Retry-After is what counts."""
        self._roll()
        self.used = 0


class RateLimited(Exception):
    def __init__(self, status: int, retry_after: float | None, detail: str) -> None:
        super().__init__(detail)
        self.status, self.retry_after, self.detail = status, retry_after, detail


def _error_text(resp: httpx.Response) -> str:
    """Binance's `{"code", "msg"}` body, or the start of whatever came back."""
    try:
        body = resp.json()
    except (ValueError, UnicodeDecodeError):
        text = resp.text.strip().replace("\n", " ")
        return text[:200] or "(empty body)"
    if isinstance(body, dict) and "msg" in body:
        return f"code {body.get('code')}: {body['msg']}"
    return json.dumps(body)[:200]


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class BinanceRest:
    def __init__(
        self,
        base_url: str,
        hooks: Hooks,
        *,
        weight_budget: int = 3000,
        max_wait_seconds: float = 300.0,
        attempts: int = 5,
        timeout: httpx.Timeout = TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hooks = hooks
        self.max_wait = max_wait_seconds
        self.attempts = attempts
        self.limiter = WeightLimiter(weight_budget, clock)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "streamforge-loader", "Accept": "application/json"},
            follow_redirects=True,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BinanceRest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints ---------------------------------------------------------------------------
    def klines(self, symbol: str, interval: str, start_ms: int, end_ms: int, limit: int = MAX_LIMIT) -> list[Any]:
        """Klines with open time in [start_ms, end_ms] (Binance: both inclusive)."""
        params = {
            "symbol": symbol,
            "interval": interval,
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": limit,
        }
        rows = self.get(KLINES_PATH, params)
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise FatalError(f"Binance {KLINES_PATH} answered {str(rows)[:120]!r}, not a list of klines")
        return rows

    def agg_trades(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = MAX_LIMIT,
    ) -> list[dict[str, Any]]:
        """fromId (inclusive) or a startTime/endTime span (< 1 hour, both inclusive)."""
        params: dict[str, Any] = {"symbol": symbol, "limit": limit}
        if from_id is not None:
            params["fromId"] = from_id
        if start_ms is not None:
            params["startTime"] = start_ms
        if end_ms is not None:
            params["endTime"] = end_ms
        rows = self.get(AGG_TRADES_PATH, params)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise FatalError(f"Binance {AGG_TRADES_PATH} answered {str(rows)[:120]!r}, not a list of trades")
        return rows

    # -- transport ---------------------------------------------------------------------------
    def get(self, path: str, params: dict[str, Any]) -> Any:
        what = f"Binance GET {path}?{urlencode(params)}"
        for _ in range(MAX_RATE_LIMITED + 1):
            try:
                return with_retries(lambda: self._attempt(path, params), self.hooks, what, attempts=self.attempts)
            except RateLimited as exc:
                self._sit_out(exc, what)
        raise FatalError(f"{what}: still rate limited by Binance after {MAX_RATE_LIMITED} waits; giving up")

    def _sit_out(self, exc: RateLimited, what: str) -> None:
        """Wait out a 429/418 as Binance asks, or fail if that is too long."""
        wait = exc.retry_after
        if wait is None:  # no Retry-After: the weight counter resets with the minute
            wait = self.limiter.delay(self.limiter.budget + 1)
        if wait > self.max_wait:
            if exc.status == 418:
                raise FatalError(
                    f"Binance banned this IP for {wait:g} s (HTTP 418), longer than "
                    f"BINANCE_MAX_WAIT_SECONDS={self.max_wait:g}; giving up on {what} ({exc.detail})"
                )
            raise FatalError(
                f"rate limited by Binance (HTTP 429) for {wait:g} s, longer than "
                f"BINANCE_MAX_WAIT_SECONDS={self.max_wait:g}; giving up on {what} ({exc.detail})"
            )
        HTTP_RETRIES.labels(str(exc.status)).inc()
        label = "rate limited by Binance" if exc.status == 429 else "IP banned by Binance"
        self.hooks.pause(wait, str(exc.status), f"{label} (HTTP {exc.status})")
        self.limiter.reset()

    def _attempt(self, path: str, params: dict[str, Any]) -> Any:
        weight = WEIGHTS.get(path, 1)
        delay = self.limiter.delay(weight)
        if delay > 0:
            self.hooks.pause(
                delay,
                "weight",
                f"request weight budget reached ({self.limiter.used}/{self.limiter.budget} used this minute)",
            )
        self.limiter.spend(weight)
        REQUESTS.inc()
        try:
            resp = self.hooks.call(lambda: self._http.get(path, params=params), f"waiting for Binance {path}")
        except httpx.TransportError as exc:
            raise classify(exc) from exc
        self.limiter.observe(resp.headers.get(WEIGHT_HEADER))
        status = resp.status_code
        if status in (429, 418):
            raise RateLimited(status, _retry_after(resp), _error_text(resp))
        if status >= 500:
            raise Transient("5xx", f"HTTP {status} ({_error_text(resp)})")
        if status != 200:
            raise FatalError(f"Binance rejected GET {path}?{urlencode(params)}: HTTP {status} ({_error_text(resp)})")
        try:
            return resp.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise Transient("invalid_body", f"invalid JSON body of {len(resp.content)} bytes ({exc})") from exc
