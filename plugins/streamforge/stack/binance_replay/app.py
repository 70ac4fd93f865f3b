"""ASGI app of the Binance replay server: Binance REST (``/api/v3``), the data.binance.vision
archive layout (``/data/...``), fault injection and the admin API (``/_replay/...``)."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .catalog import INTERVAL_MS, MARKETS, Catalog
from .faults import MSG_IP_BANNED, MSG_TOO_MUCH_WEIGHT, SERVER_ERROR_BODIES, Fault, Faults, FaultState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Request weights (X-MBX-USED-WEIGHT-1M). Values of the current Binance spot REST docs
# (binance-spot-api-docs, "Market Data endpoints"), also what third-party clients measure
# (e.g. polyoxide-binance's spot weight table: aggTrades 4 at any limit, klines 2):
#   ping 1, time 1, exchangeInfo 20, klines 2 (any limit), aggTrades 4.
# (The 2021-2023 docs had 1 / 1 / 10 / 1 / 1.) Other /api/ paths count 1.
WEIGHTS: dict[str, int] = {
    "/api/v3/ping": 1,
    "/api/v3/time": 1,
    "/api/v3/exchangeInfo": 20,
    "/api/v3/klines": 2,
    "/api/v3/aggTrades": 4,
}
DEFAULT_WEIGHT_LIMIT = 6000  # REQUEST_WEIGHT per 1 MINUTE per IP on api.binance.com today
MAX_LIMIT = 1000

JSON_TYPE = "application/json;charset=UTF-8"
_SYMBOL_RE = re.compile(r"^[A-Z0-9-_.]{1,20}$")
_LONG_RE = re.compile(r"^[0-9]{1,20}$")
_SYMBOL_RANGE = "^[A-Z0-9-_.]{1,20}$"
_LONG_RANGE = "^[0-9]{1,20}$"
_SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
_ARCHIVE_RE = re.compile(
    r"^/data/(?P<market>spot|futures/um|futures/cm)/(?P<freq>daily|monthly)/(?P<dataset>klines|aggTrades)/"
    r"(?P<symbol>[A-Z0-9_]+)/(?:(?P<interval>\d+[smhdwM])/)?(?P<file>[^/]+)$"
)
_PREFIX_TO_MARKET = {v: k for k, v in MARKETS.items()}


class ApiError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def now_ms() -> int:
    return int(time.time() * 1000)


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json_bytes(obj), status_code=status, media_type=JSON_TYPE, headers=headers)


def api_error_response(code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> Response:
    return json_response({"code": code, "msg": msg}, status, headers)


def s3_error(code: str, message: str, status: int, key: str = "") -> Response:
    """data.binance.vision is an S3 bucket behind a CDN: its errors are S3 XML documents."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        + (f"<Key>{key}</Key>" if key else "")
        + "</Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


class WeightCounter:
    """Sliding one-minute request-weight counter (one per server: the replay has one 'IP')."""

    def __init__(self, window_seconds: float = 60.0) -> None:
        self.window = window_seconds
        self._events: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def _prune(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self.window:
            self._events.popleft()

    def used(self) -> int:
        with self._lock:
            self._prune(time.monotonic())
            return sum(w for _, w in self._events)

    def add(self, weight: int, limit: int | None = None) -> tuple[bool, int]:
        """Count ``weight`` unless it would pass ``limit``; return (accepted, retry_after_seconds)."""
        with self._lock:
            now = time.monotonic()
            self._prune(now)
            used = sum(w for _, w in self._events)
            if limit is not None and used + weight > limit:
                # wait until enough weight has left the window
                free, retry = used + weight - limit, self.window
                for ts, w in self._events:
                    free -= w
                    if free <= 0:
                        retry = ts + self.window - now
                        break
                return False, max(1, math.ceil(retry))
            self._events.append((now, weight))
            return True, 0

    def reset(self) -> None:
        with self._lock:
            self._events.clear()


# -- parameter validation (Binance order: duplicates, unread, mandatory, syntax, semantics) ----------
def _params(request: Request, allowed: set[str]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in seen:
            raise ApiError(-1101, "Duplicate values for a parameter detected.")
        seen[key] = value
    read = sum(1 for k in seen if k in allowed)
    if read != len(seen):
        raise ApiError(
            -1104,
            f"Not all sent parameters were read; read '{read}' parameter(s) but was sent '{len(seen)}'.",
        )
    return seen


def _mandatory(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def _symbol(value: str, name: str = "symbol") -> str:
    if not _SYMBOL_RE.match(value):
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{_SYMBOL_RANGE}'.")
    return value


def _long(params: dict[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not _LONG_RE.match(value):
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{_LONG_RANGE}'.")
    return int(value)


class ReplayApp:
    """The ASGI application. ``faults`` and ``weights`` are live, thread-safe state."""

    def __init__(
        self,
        catalog: Catalog | None = None,
        faults: FaultState | Faults | list | dict | None = None,
        weight_limit: int | None = DEFAULT_WEIGHT_LIMIT,
        limit_policy: Literal["error", "clamp"] = "error",
    ) -> None:
        self.catalog = catalog if catalog is not None else Catalog()
        self.faults = faults if isinstance(faults, FaultState) else FaultState(faults)
        self.weights = WeightCounter()
        self.weight_limit = weight_limit
        self.limit_policy = limit_policy
        self.router = Starlette(
            routes=[
                Route("/api/v3/ping", self.ping),
                Route("/api/v3/time", self.server_time),
                Route("/api/v3/exchangeInfo", self.exchange_info),
                Route("/api/v3/klines", self.klines),
                Route("/api/v3/aggTrades", self.agg_trades),
                Route("/data/{rest:path}", self.archive),
                Route("/_replay/faults", self.admin_faults, methods=["GET", "POST", "DELETE"]),
                Route("/_replay/faults/{fault_id}", self.admin_fault_delete, methods=["DELETE"]),
                Route("/_replay/stats", self.admin_stats, methods=["GET", "DELETE"]),
                Route("/_replay/catalog", self.admin_catalog),
            ],
            exception_handlers={ApiError: self._on_api_error},
        )

    # -- ASGI entry: stats, faults, weight -------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/_replay"):
            await self.router(scope, receive, send)
            return
        self.faults.record_request(path)
        is_api = path.startswith("/api/")

        delay = self.faults.take("delay", path)
        if delay is not None:
            await asyncio.sleep(delay.delay_seconds)
        status_fault = self.faults.take("status", path)
        rejected_retry = 0  # > 0: the real weight limit was hit (injected statuses bypass the limit)
        if is_api:
            limit = None if status_fault is not None else self.weight_limit
            _accepted, rejected_retry = self.weights.add(WEIGHTS.get(path, 1), limit)
        truncate = self.faults.take("truncate", path)
        out = self._wrap_send(send, is_api, truncate)

        if status_fault is not None:
            await self._fault_response(status_fault, path)(scope, receive, out)
        elif rejected_retry:
            msg = MSG_TOO_MUCH_WEIGHT.format(limit=self.weight_limit)
            await api_error_response(-1003, msg, 429, {"Retry-After": str(rejected_retry)})(scope, receive, out)
        else:
            await self.router(scope, receive, out)

    def _wrap_send(self, send: Send, is_api: bool, truncate: Fault | None) -> Send:
        held: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.faults.record_status(message["status"])
                headers = list(message.get("headers", []))
                if is_api:
                    used = str(self.weights.used()).encode()
                    headers += [(b"x-mbx-used-weight", used), (b"x-mbx-used-weight-1m", used)]
                message = {**message, "headers": headers}
                if truncate is None:
                    await send(message)
                else:
                    held["start"] = message
                return
            if message["type"] != "http.response.body" or truncate is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            cut = max(1, int(len(body) * truncate.fraction)) if body else 0
            start = held["start"]
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            if truncate.mode == "half":  # a complete HTTP response carrying half a body
                await send({**start, "headers": [*headers, (b"content-length", str(cut).encode())]})
                await send({"type": "http.response.body", "body": body[:cut], "more_body": False})
            else:  # "cut": promise the whole body, send part of it, never finish -> server closes
                await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body[:cut], "more_body": True})
                # returning with the response unfinished makes uvicorn close the connection

        return wrapped

    def _fault_response(self, fault: Fault, path: str) -> Response:
        headers: dict[str, str] = {}
        retry_after = fault.retry_after
        if retry_after is None and fault.kind in ("rate_limit", "ip_ban"):
            retry_after = 1
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        status = fault.status or 503
        if isinstance(fault.body, dict):
            return json_response(fault.body, status, headers)
        if isinstance(fault.body, str):
            return Response(fault.body, status_code=status, media_type="text/plain", headers=headers)
        if fault.kind == "rate_limit":
            limit = self.weight_limit or DEFAULT_WEIGHT_LIMIT
            return api_error_response(-1003, MSG_TOO_MUCH_WEIGHT.format(limit=limit), 429, headers)
        if fault.kind == "ip_ban":
            until = now_ms() + 1000 * (retry_after or 0)
            return api_error_response(-1003, MSG_IP_BANNED.format(until_ms=until), 418, headers)
        if path.startswith("/data/"):
            code = {500: "InternalError", 503: "SlowDown"}.get(status, "ServiceUnavailable")
            resp = s3_error(code, "Injected by the StreamForge Binance replay", status)
            resp.headers.update(headers)
            return resp
        code, msg = SERVER_ERROR_BODIES.get(status, SERVER_ERROR_BODIES[500])
        return api_error_response(code, msg, status, headers)

    async def _on_api_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return api_error_response(exc.code, exc.msg, exc.status)

    # -- REST --------------------------------------------------------------------------------
    async def ping(self, request: Request) -> Response:
        _params(request, set())
        return json_response({})

    async def server_time(self, request: Request) -> Response:
        _params(request, set())
        return json_response({"serverTime": now_ms()})

    def _limit(self, params: dict[str, str]) -> int:
        limit = _long(params, "limit")
        if limit is None:
            return 500
        if limit > MAX_LIMIT and self.limit_policy == "clamp":
            return MAX_LIMIT
        if limit < 1 or limit > MAX_LIMIT:
            # -1130 INVALID_PARAMETER, as Binance answers an out-of-range limit (e.g. ccxt/ccxt#9904).
            raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        return limit

    def _known_symbol(self, symbol: str) -> str:
        if not self.catalog.has_symbol(symbol):
            raise ApiError(-1121, "Invalid symbol.")
        return symbol

    async def klines(self, request: Request) -> Response:
        params = _params(request, {"symbol", "interval", "startTime", "endTime", "limit", "timeZone"})
        symbol = _symbol(_mandatory(params, "symbol"))
        interval = _mandatory(params, "interval")
        start, end = _long(params, "startTime"), _long(params, "endTime")
        limit = self._limit(params)
        if params.get("timeZone", "0") not in ("0", "+0", "00:00", "+00:00"):
            raise ApiError(-1130, "Data sent for parameter 'timeZone' is not valid.")  # only UTC replayed
        self._known_symbol(symbol)
        if interval not in INTERVAL_MS:
            raise ApiError(-1120, "Invalid interval.")
        gaps = self.faults.take_gaps(request.url.path, symbol, interval) + self.faults.outside_listing(symbol)
        rows = await asyncio.to_thread(self.catalog.klines, symbol, interval, start, end, limit, gaps)
        return json_response(rows)

    async def agg_trades(self, request: Request) -> Response:
        params = _params(request, {"symbol", "fromId", "startTime", "endTime", "limit"})
        symbol = _symbol(_mandatory(params, "symbol"))
        from_id = _long(params, "fromId")
        start, end = _long(params, "startTime"), _long(params, "endTime")
        limit = self._limit(params)
        self._known_symbol(symbol)
        if from_id is not None and (start is not None or end is not None):
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        if start is not None and end is not None and end - start > 3_600_000:
            # Binance: "If both startTime and endTime are sent, time between startTime and endTime must
            # be less than 1 hour"; exactly one hour is accepted in practice.
            raise ApiError(-1127, "More than 1 hours between startTime and endTime.")
        id_gaps = self.faults.take_trade_gaps(request.url.path, symbol)
        time_gaps = self.faults.outside_listing(symbol)
        rows = await asyncio.to_thread(self.catalog.agg_trades, symbol, from_id, start, end, limit, time_gaps, id_gaps)
        return json_response(rows)

    async def exchange_info(self, request: Request) -> Response:
        params = _params(request, {"symbol", "symbols", "permissions", "showPermissionSets", "symbolStatus"})
        served = self.catalog.symbols()
        wanted = served
        if "symbol" in params and "symbols" in params:
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        if "symbol" in params:
            wanted = [self._known_symbol(_symbol(_mandatory(params, "symbol")))]
        elif "symbols" in params:
            raw = params["symbols"].replace(" ", "")
            try:
                listed = json.loads(raw)
                assert isinstance(listed, list) and all(isinstance(s, str) and _SYMBOL_RE.match(s) for s in listed)
            except (ValueError, AssertionError):
                raise ApiError(
                    -1100,
                    f"Illegal characters found in parameter 'symbols'; legal range is '{_SYMBOLS_RANGE}'.",
                ) from None
            if len(set(listed)) != len(listed):
                raise ApiError(-1151, "Symbol is present multiple times in the list.")
            wanted = [self._known_symbol(s) for s in listed]
        return json_response(self._exchange_info(wanted))

    def _exchange_info(self, symbols: list[str]) -> dict[str, Any]:
        template = self.catalog.exchange_info_template()
        info = (
            copy.deepcopy(template)
            if template
            else {
                "timezone": "UTC",
                "serverTime": 0,
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 0},
                    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
                ],
                "exchangeFilters": [],
                "symbols": [],
            }
        )
        info["serverTime"] = now_ms()
        for limit in info.get("rateLimits", []):  # advertise the limit this replay enforces
            if limit.get("rateLimitType") == "REQUEST_WEIGHT" and limit.get("intervalNum") == 1:
                limit["limit"] = self.weight_limit or DEFAULT_WEIGHT_LIMIT
        recorded = {s["symbol"]: s for s in info.get("symbols", [])}
        info["symbols"] = [copy.deepcopy(recorded.get(s) or _synthetic_symbol(s)) for s in symbols]
        for entry in info["symbols"]:
            listing = self.faults.listing(entry["symbol"])
            if listing is not None and listing.delisted_at_ms is not None and now_ms() >= listing.delisted_at_ms:
                entry["status"] = listing.symbol_status
        return info

    # -- archive (data.binance.vision layout) --------------------------------------------------
    async def archive(self, request: Request) -> Response:
        path = request.url.path
        m = _ARCHIVE_RE.match(path)
        if m is None:
            return s3_error("NoSuchKey", "The specified key does not exist.", 404, path.lstrip("/"))
        market = _PREFIX_TO_MARKET[m["market"]]
        symbol, interval, file = m["symbol"], m["interval"], m["file"]
        want_checksum = file.endswith(".CHECKSUM")
        zip_name = file.removesuffix(".CHECKSUM")
        archive = None
        if m["dataset"] == "klines" and interval:
            prefix = f"{symbol}-{interval}-"
            period = zip_name.removeprefix(prefix).removesuffix(".zip")
            plen = 10 if m["freq"] == "daily" else 7
            if zip_name.startswith(prefix) and zip_name.endswith(".zip") and len(period) == plen:
                gaps = self.faults.take_gaps(path, symbol, interval) + self.faults.outside_listing(symbol)
                archive = await asyncio.to_thread(self.catalog.kline_archive, market, symbol, interval, period, gaps)
        elif m["dataset"] == "aggTrades" and not interval and m["freq"] == "monthly":
            prefix = f"{symbol}-aggTrades-"
            period = zip_name.removeprefix(prefix).removesuffix(".zip")
            if zip_name.startswith(prefix) and zip_name.endswith(".zip") and len(period) == 7:
                archive = await asyncio.to_thread(self.catalog.agg_month_archive, market, symbol, period)
        elif m["dataset"] == "aggTrades" and not interval and m["freq"] == "daily":
            prefix = f"{symbol}-aggTrades-"
            period = zip_name.removeprefix(prefix).removesuffix(".zip")
            if zip_name.startswith(prefix) and zip_name.endswith(".zip") and len(period) == 10:
                time_gaps, id_gaps = self.faults.outside_listing(symbol), self.faults.take_trade_gaps(path, symbol)
                archive = await asyncio.to_thread(self.catalog.agg_archive, market, symbol, period, time_gaps, id_gaps)
        if archive is None:
            return s3_error("NoSuchKey", "The specified key does not exist.", 404, path.lstrip("/"))
        if not want_checksum:
            return Response(archive.body, media_type="application/zip")
        body = archive.checksum
        if self.faults.take("bad_checksum", path) is not None:
            wrong = hashlib.sha256(b"streamforge-replay-bad-checksum" + archive.body).hexdigest()
            body = f"{wrong}  {archive.name}".encode()
        return Response(body, media_type="application/octet-stream")

    # -- admin ---------------------------------------------------------------------------------
    async def admin_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            return json_response({"cleared": self.faults.clear()})
        if request.method == "POST":
            try:
                payload = json.loads(await request.body() or b"[]")
                replace = bool(isinstance(payload, dict) and payload.pop("replace", False))
                parsed = Faults.parse(payload)
            except (ValueError, ValidationError) as exc:
                detail = (
                    exc.errors(include_url=False, include_context=False)
                    if isinstance(exc, ValidationError)
                    else str(exc)
                )
                return json_response({"error": "invalid faults", "detail": detail}, 400)
            added = (self.faults.set if replace else self.faults.add)(parsed)
            return json_response(
                {
                    "added": [f.model_dump(exclude_none=True) for f in added],
                    "faults": [f.model_dump(exclude_none=True) for f in self.faults.list()],
                }
            )
        return json_response({"faults": [f.model_dump(exclude_none=True) for f in self.faults.list()]})

    async def admin_fault_delete(self, request: Request) -> Response:
        cleared = self.faults.clear(request.path_params["fault_id"])
        return json_response({"cleared": cleared}, 200 if cleared else 404)

    async def admin_stats(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.reset_stats()
            self.weights.reset()
            return json_response({"reset": True})
        stats = self.faults.stats()
        stats["used_weight_1m"] = self.weights.used()
        stats["weight_limit"] = self.weight_limit
        return json_response(stats)

    async def admin_catalog(self, request: Request) -> Response:
        cat = self.catalog
        return json_response(
            {
                "data_dirs": [str(d) for d in cat.data_dirs],
                "symbols": cat.symbols(),
                "kline_days": sorted("/".join(k) for k in cat.kline_days),
                "kline_months": sorted("/".join(k) for k in cat.kline_months),
                "agg_trade_days": sorted("/".join(k) for k in cat.agg_days),
            }
        )


_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "BTC", "ETH", "BNB", "EUR", "TRY")


def _synthetic_symbol(symbol: str) -> dict[str, Any]:
    """exchangeInfo entry for a served symbol absent from the recorded response (e.g. BTCUSD_PERP)."""
    pair = symbol.split("_")[0]
    quote = next((q for q in _QUOTES if pair.endswith(q) and len(pair) > len(q)), "")
    base = pair[: len(pair) - len(quote)] if quote else pair
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "quoteOrderQtyMarketAllowed": False,
        "isSpotTradingAllowed": False,
        "isMarginTradingAllowed": False,
        "filters": [],
        "permissions": [],
    }
