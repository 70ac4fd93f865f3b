"""The Binance replay server (plugins/streamforge/stack/binance_replay), exercised over HTTP with httpx.

Acceptance: the real 2020-01-01 BTCUSDT 1m day is the same whether it is paged out of
/api/v3/klines or downloaded as the data.binance.vision zip, and the zip matches its .CHECKSUM.
Then Binance's error semantics, the request-weight header, every injected fault, and a full
aggTrades walk by fromId over the real COIN-M day.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import signal
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamforge.contracts.records import candle_from_rest, candles_from_csv, trade_from_rest, trades_from_csv
from streamforge.stack.binance_replay import ReplayServer, shared_data_dir
from streamforge.stack.binance_replay.catalog import REPO_DATA_DIR, REPO_ROOT

SHARED = shared_data_dir() / "binance"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data directory {SHARED} not found")

DAY_MS = 86_400_000
MINUTE_MS = 60_000
DAY_2020 = 1_577_836_800_000  # 2020-01-01T00:00:00Z
ZIP_2020 = "BTCUSDT-1m-2020-01-01.zip"
ZIP_2020_PATH = REPO_DATA_DIR / "spot" / "klines" / "1m" / ZIP_2020
AUG_2024 = 1_722_470_400_000  # 2024-08-01T00:00:00Z
DAY_2026 = 1_778_198_400_000  # 2026-05-08T00:00:00Z
PERP = "BTCUSD_PERP"
PERP_ZIP = f"{PERP}-aggTrades-2026-05-08.zip"


@pytest.fixture
def replay(binance_replay_clean: ReplayServer) -> ReplayServer:
    return binance_replay_clean


@pytest.fixture
def client(replay: ReplayServer) -> httpx.Client:
    with httpx.Client(base_url=replay.base_url, timeout=10) as c:
        yield c


# -- helpers -------------------------------------------------------------------------------------
def klines_paged(client: httpx.Client, symbol: str, interval: str, start: int, end: int) -> list[list[Any]]:
    """Page /api/v3/klines with limit=1000 the way a loader does: next startTime = last open + 1."""
    rows: list[list[Any]] = []
    cursor = start
    while True:
        resp = client.get(
            "/api/v3/klines",
            params={
                "symbol": symbol,
                "interval": interval,
                "startTime": cursor,
                "endTime": end,
                "limit": 1000,
            },
        )
        assert resp.status_code == 200, resp.text
        page = resp.json()
        rows += page
        if len(page) < 1000:
            return rows
        cursor = page[-1][0] + 1


def unzip_csv(body: bytes) -> tuple[str, list[str]]:
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        (name,) = zf.namelist()
        return name, zf.read(name).decode().splitlines()


def check_checksum(body: bytes, checksum: bytes, zip_name: str, newline: bool = False) -> None:
    """``<sha256>  <name>``; no trailing newline, except where the published file has one
    (the COIN-M aggTrades .CHECKSUM does, unlike the spot ones; it is served byte-for-byte)."""
    assert checksum.decode() == f"{hashlib.sha256(body).hexdigest()}  {zip_name}" + ("\n" if newline else "")


def assert_error(resp: httpx.Response, code: int, msg: str | re.Pattern[str], status: int = 400) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"code", "msg"}
    assert body["code"] == code
    if isinstance(msg, re.Pattern):
        assert msg.fullmatch(body["msg"]), body["msg"]
    else:
        assert body["msg"] == msg
    assert_documented(code, body["msg"])


def assert_documented(code: int, msg: str) -> None:
    """The code/msg pair is one of Binance's documented templates (errors.md, %s = any text)."""
    errors_file = SHARED / "errors" / "spot-error-codes.from-docs.json"
    if not errors_file.is_file():
        return
    entry = next((e for e in json.loads(errors_file.read_text())["errors"] if e["code"] == code), None)
    assert entry is not None, f"code {code} is not in Binance's error list"
    patterns = [re.escape(m).replace("%s", ".+") for m in entry["messages"]]
    assert any(re.fullmatch(p, msg) for p in patterns), f"{msg!r} matches none of {entry['messages']}"


def used_weight(resp: httpx.Response) -> int:
    return int(resp.headers["x-mbx-used-weight-1m"])


# -- acceptance ----------------------------------------------------------------------------------
def test_acceptance_rest_klines_equal_archive_zip_for_2020_01_01(replay: ReplayServer, client: httpx.Client) -> None:
    rows = klines_paged(client, "BTCUSDT", "1m", DAY_2020, DAY_2020 + DAY_MS - 1)

    opens = [r[0] for r in rows]
    assert len(rows) == 1440
    assert len(set(opens)) == 1440, "duplicate klines at page edges"
    assert opens == [DAY_2020 + i * MINUTE_MS for i in range(1440)]
    assert all(len(r) == 12 and r[11] == "0" for r in rows)
    assert all(isinstance(r[0], int) and isinstance(r[6], int) and isinstance(r[8], int) for r in rows)
    assert all(isinstance(r[i], str) for r in rows for i in (1, 2, 3, 4, 5, 7, 9, 10))

    zresp = client.get(f"{replay.archive_url}/daily/klines/BTCUSDT/1m/{ZIP_2020}")
    cresp = client.get(f"{replay.archive_url}/daily/klines/BTCUSDT/1m/{ZIP_2020}.CHECKSUM")
    assert zresp.status_code == cresp.status_code == 200
    assert zresp.content == ZIP_2020_PATH.read_bytes(), "original zip bytes must be served byte-for-byte"
    assert cresp.content == ZIP_2020_PATH.with_name(ZIP_2020 + ".CHECKSUM").read_bytes()
    check_checksum(zresp.content, cresp.content, ZIP_2020)

    member, lines = unzip_csv(zresp.content)
    assert member == "BTCUSDT-1m-2020-01-01.csv"
    # Through the project's shared parsers (streamforge.contracts.records)...
    assert [candle_from_rest("BTCUSDT", "1m", r) for r in rows] == list(candles_from_csv("BTCUSDT", "1m", lines))
    # ...and as raw text: REST numbers-as-strings are the archive's cells verbatim.
    assert [[str(v) for v in r[:11]] for r in rows] == [ln.split(",")[:11] for ln in lines]


def test_klines_time_window_semantics(client: httpx.Client) -> None:
    def get(**params: Any) -> list[list[Any]]:
        resp = client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", **params})
        assert resp.status_code == 200, resp.text
        return resp.json()

    # endTime is inclusive for the open time; startTime too
    assert [r[0] for r in get(startTime=DAY_2020, endTime=DAY_2020 + MINUTE_MS)] == [
        DAY_2020,
        DAY_2020 + MINUTE_MS,
    ]
    assert [r[0] for r in get(startTime=DAY_2020 + 1, endTime=DAY_2020 + MINUTE_MS)] == [DAY_2020 + MINUTE_MS]
    # default limit 500, ascending from startTime, across the day boundary into 2020-01-02
    page = get(startTime=DAY_2020 + DAY_MS - 10 * MINUTE_MS)
    assert len(page) == 500 and page[10][0] == DAY_2020 + DAY_MS
    # only endTime: the `limit` klines ending there; neither: the most recent ones (end of 2020-01-03)
    assert [r[0] for r in get(endTime=DAY_2020 + 5 * MINUTE_MS, limit=3)] == [
        DAY_2020 + 3 * MINUTE_MS,
        DAY_2020 + 4 * MINUTE_MS,
        DAY_2020 + 5 * MINUTE_MS,
    ]
    assert [r[0] for r in get(limit=2)] == [
        DAY_2020 + 3 * DAY_MS - 2 * MINUTE_MS,
        DAY_2020 + 3 * DAY_MS - MINUTE_MS,
    ]
    assert len(get(startTime=DAY_2020, endTime=DAY_2020 + 3 * DAY_MS, limit=1000)) == 1000
    assert get(startTime=DAY_2020 + 3 * DAY_MS) == []
    assert get(interval="5m", limit=5) == []  # a valid interval the replay has no recording of


def test_three_day_backfill_is_gap_free(client: httpx.Client) -> None:
    rows = klines_paged(client, "BTCUSDT", "1m", DAY_2020, DAY_2020 + 3 * DAY_MS - 1)
    assert [r[0] for r in rows] == [DAY_2020 + i * MINUTE_MS for i in range(4320)]
    assert all(r[6] == r[0] + MINUTE_MS - 1 for r in rows)


@needs_shared
def test_monthly_csv_served_as_rest_and_as_synthesised_daily_zips(replay: ReplayServer, client: httpx.Client) -> None:
    rows = klines_paged(client, "BTCUSDT", "1h", AUG_2024, AUG_2024 + 31 * DAY_MS - 1)
    assert [r[0] for r in rows] == [AUG_2024 + i * 3_600_000 for i in range(744)]
    monthly = (SHARED / "spot" / "klines" / "1h" / "BTCUSDT-1h-2024-08.csv").read_text().splitlines()
    assert [[str(v) for v in r[:11]] for r in rows] == [ln.split(",")[:11] for ln in monthly]

    for day in (1, 15, 31):
        name = f"BTCUSDT-1h-2024-08-{day:02d}.zip"
        url = f"{replay.archive_url}/daily/klines/BTCUSDT/1h/{name}"
        body, again = client.get(url).content, client.get(url).content
        assert body == again, "synthesised zips must be deterministic"
        check_checksum(body, client.get(url + ".CHECKSUM").content, name)
        member, lines = unzip_csv(body)
        assert member == name.replace(".zip", ".csv")
        assert lines == monthly[(day - 1) * 24 : day * 24]

    month = client.get(f"{replay.archive_url}/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-08.zip")
    assert month.status_code == 200 and unzip_csv(month.content)[1] == monthly


def test_archive_missing_day_is_404(replay: ReplayServer, client: httpx.Client) -> None:
    for path in (
        "daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-04.zip",
        "daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-04.zip.CHECKSUM",
        "daily/klines/ETHUSDT/1m/ETHUSDT-1m-2020-01-01.zip",
        "daily/klines/BTCUSDT/1m/BTCUSDT-1h-2020-01-01.zip",
    ):
        resp = client.get(f"{replay.archive_url}/{path}")
        assert resp.status_code == 404, path
        assert "<Code>NoSuchKey</Code>" in resp.text


def test_microsecond_archives_are_served_in_ms_on_rest(tmp_path: Path) -> None:
    # Synthetic 3-row input (not market data) in the 2025+ spot layout: µs open/close times.
    start_us = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z
    minute_us = 60_000_000
    lines = [
        f"{t},1.0,2.0,0.5,1.5,10.0,{t + minute_us - 1},15.0,3,4.0,6.0,0\n"
        for t in (start_us + i * minute_us for i in range(3))
    ]
    folder = tmp_path / "spot" / "klines" / "1m"
    folder.mkdir(parents=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("TESTUSDT-1m-2025-01-01.csv", "".join(lines))
    (folder / "TESTUSDT-1m-2025-01-01.zip").write_bytes(buf.getvalue())

    with ReplayServer([tmp_path]) as srv, httpx.Client() as http:
        rows = http.get(
            f"{srv.api_url}/api/v3/klines",
            params={"symbol": "TESTUSDT", "interval": "1m", "startTime": start_us // 1000},
        ).json()
        assert [(r[0], r[6]) for r in rows] == [
            (start_us // 1000 + i * MINUTE_MS, start_us // 1000 + (i + 1) * MINUTE_MS - 1) for i in range(3)
        ]
        archived = http.get(f"{srv.archive_url}/daily/klines/TESTUSDT/1m/TESTUSDT-1m-2025-01-01.zip")
        assert archived.content == buf.getvalue(), "archives keep their µs timestamps, byte-for-byte"
        check_checksum(
            archived.content,
            http.get(f"{srv.archive_url}/daily/klines/TESTUSDT/1m/TESTUSDT-1m-2025-01-01.zip.CHECKSUM").content,
            "TESTUSDT-1m-2025-01-01.zip",
        )
        # no recorded exchangeInfo in this data dir: a synthetic entry is served
        info = http.get(f"{srv.api_url}/api/v3/exchangeInfo").json()
        assert [(s["symbol"], s["baseAsset"], s["quoteAsset"]) for s in info["symbols"]] == [
            ("TESTUSDT", "TEST", "USDT")
        ]


# -- general endpoints ---------------------------------------------------------------------------
def test_ping_time_exchange_info(client: httpx.Client) -> None:
    assert client.get("/api/v3/ping").json() == {}
    server_time = client.get("/api/v3/time").json()["serverTime"]
    assert abs(server_time - time.time() * 1000) < 5_000

    info = client.get("/api/v3/exchangeInfo").json()
    symbols = {s["symbol"]: s for s in info["symbols"]}
    assert set(symbols) >= {"BTCUSDT"}
    if SHARED.is_dir():
        assert set(symbols) == {"BTCUSDT", PERP}  # ETHUSDT is recorded but has no data: not listed
        assert symbols["BTCUSDT"]["filters"][0]["tickSize"] == "0.01000000"  # the recorded entry
        assert (symbols[PERP]["status"], symbols[PERP]["baseAsset"], symbols[PERP]["quoteAsset"]) == (
            "TRADING",
            "BTC",
            "USD",
        )
    weight = [r for r in info["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT"]
    assert weight[0]["limit"] == 6000 and weight[0]["interval"] == "MINUTE"

    one = client.get("/api/v3/exchangeInfo", params={"symbol": "BTCUSDT"}).json()
    assert [s["symbol"] for s in one["symbols"]] == ["BTCUSDT"]
    assert_error(client.get("/api/v3/exchangeInfo", params={"symbol": "ETHUSDT"}), -1121, "Invalid symbol.")
    assert_error(client.get("/api/v3/exchangeInfo", params={"symbols": '["BTCUSDT","NOPE"]'}), -1121, "Invalid symbol.")
    if SHARED.is_dir():
        two = client.get("/api/v3/exchangeInfo", params={"symbols": json.dumps(["BTCUSDT", PERP])}).json()
        assert [s["symbol"] for s in two["symbols"]] == ["BTCUSDT", PERP]


# -- error semantics -----------------------------------------------------------------------------
BAD_SYMBOL_CHARS = "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'."


@pytest.mark.parametrize(
    ("path", "params", "code", "msg"),
    [
        ("/api/v3/klines", {"symbol": "NOPEUSDT", "interval": "1m"}, -1121, "Invalid symbol."),
        (
            "/api/v3/klines",
            {"interval": "1m"},
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        ),
        (
            "/api/v3/klines",
            {"symbol": "", "interval": "1m"},
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        ),
        (
            "/api/v3/klines",
            {"symbol": "BTCUSDT"},
            -1102,
            "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.",
        ),
        ("/api/v3/klines", {"symbol": "btcusdt", "interval": "1m"}, -1100, BAD_SYMBOL_CHARS),
        (
            "/api/v3/klines",
            {"symbol": "BTCUSDT", "interval": "1m", "limit": "abc"},
            -1100,
            "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.",
        ),
        (
            "/api/v3/klines",
            {"symbol": "BTCUSDT", "interval": "1m", "startTime": "-1"},
            -1100,
            "Illegal characters found in parameter 'startTime'; legal range is '^[0-9]{1,20}$'.",
        ),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "7m"}, -1120, "Invalid interval."),
        (
            "/api/v3/klines",
            {"symbol": "BTCUSDT", "interval": "1m", "limit": "1001"},
            -1130,
            "Data sent for parameter 'limit' is not valid.",
        ),
        (
            "/api/v3/klines",
            {"symbol": "BTCUSDT", "interval": "1m", "limit": "0"},
            -1130,
            "Data sent for parameter 'limit' is not valid.",
        ),
        (
            "/api/v3/klines",
            {"symbol": "BTCUSDT", "interval": "1m", "foo": "1"},
            -1104,
            "Not all sent parameters were read; read '2' parameter(s) but was sent '3'.",
        ),
        (
            "/api/v3/klines?symbol=BTCUSDT&symbol=BTCUSDT&interval=1m",
            {},
            -1101,
            "Duplicate values for a parameter detected.",
        ),
        (
            "/api/v3/aggTrades",
            {},
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        ),
        ("/api/v3/aggTrades", {"symbol": "NOPE"}, -1121, "Invalid symbol."),
        (
            "/api/v3/aggTrades",
            {"symbol": "BTCUSDT", "limit": "1001"},
            -1130,
            "Data sent for parameter 'limit' is not valid.",
        ),
        (
            "/api/v3/aggTrades",
            {"symbol": "BTCUSDT", "startTime": str(DAY_2020), "endTime": str(DAY_2020 + 3_600_001)},
            -1127,
            "More than 1 hours between startTime and endTime.",
        ),
        (
            "/api/v3/aggTrades",
            {"symbol": "BTCUSDT", "fromId": "1", "startTime": str(DAY_2020)},
            -1128,
            "Combination of optional parameters invalid.",
        ),
    ],
)
def test_error_semantics(client: httpx.Client, path: str, params: dict[str, str], code: int, msg: str) -> None:
    resp = client.get(path, params=params or None)
    assert_error(resp, code, msg)
    assert used_weight(resp) > 0, "rejected requests still carry X-MBX-USED-WEIGHT-1M"


def test_limit_1000_is_accepted_and_clamp_policy(client: httpx.Client) -> None:
    resp = client.get(
        "/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "startTime": DAY_2020, "limit": 1000}
    )
    assert resp.status_code == 200 and len(resp.json()) == 1000
    with ReplayServer(limit_policy="clamp") as srv:
        resp = client.get(
            f"{srv.api_url}/api/v3/klines",
            params={"symbol": "BTCUSDT", "interval": "1m", "startTime": DAY_2020, "limit": 1500},
        )
        assert resp.status_code == 200 and len(resp.json()) == 1000


@needs_shared
def test_agg_trades_one_hour_window(client: httpx.Client) -> None:
    hour = {"symbol": PERP, "startTime": DAY_2026, "endTime": DAY_2026 + 3_600_000, "limit": 1000}
    rows = client.get("/api/v3/aggTrades", params=hour).json()  # exactly one hour is accepted
    assert len(rows) == 1000 and rows[0]["T"] >= DAY_2026 and rows[-1]["T"] <= DAY_2026 + 3_600_000
    assert_error(
        client.get("/api/v3/aggTrades", params={**hour, "endTime": DAY_2026 + 3_600_001}),
        -1127,
        "More than 1 hours between startTime and endTime.",
    )
    latest = client.get("/api/v3/aggTrades", params={"symbol": PERP, "limit": 2}).json()
    assert [t["T"] for t in latest] == [1778284798594, 1778284799655]  # the day's last two, ascending


def test_used_weight_header_counts_per_endpoint(client: httpx.Client, replay: ReplayServer) -> None:
    expected = 0
    # weights of today's Binance spot docs: ping 1, time 1, klines 2, aggTrades 4, exchangeInfo 20
    for path, params, weight in [
        ("/api/v3/ping", {}, 1),
        ("/api/v3/time", {}, 1),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1}, 2),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1000}, 2),
        ("/api/v3/aggTrades", {"symbol": "BTCUSDT", "limit": 1}, 4),
        ("/api/v3/exchangeInfo", {}, 20),
        ("/api/v3/klines", {"symbol": "NOPE", "interval": "1m"}, 2),  # errors are weighed too
    ]:
        resp = client.get(path, params=params)
        expected += weight
        assert used_weight(resp) == expected, path
        assert resp.headers["x-mbx-used-weight"] == str(expected)
    assert replay.stats()["used_weight_1m"] == expected
    assert (
        "x-mbx-used-weight-1m"
        not in client.get(f"{replay.archive_url}/daily/klines/BTCUSDT/1m/{ZIP_2020}.CHECKSUM").headers
    )


def test_weight_limit_gives_real_429() -> None:
    with ReplayServer(weight_limit=10) as srv, httpx.Client(base_url=srv.api_url) as c:
        params = {"symbol": "BTCUSDT", "interval": "1m", "limit": 1}
        assert [c.get("/api/v3/klines", params=params).status_code for _ in range(5)] == [200] * 5
        resp = c.get("/api/v3/klines", params=params)
        assert_error(
            resp,
            -1003,
            "Too much request weight used; current limit is 10 request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API.",
            429,
        )
        assert 1 <= int(resp.headers["retry-after"]) <= 60
        assert used_weight(resp) == 10


# -- faults --------------------------------------------------------------------------------------
KLINES = {"symbol": "BTCUSDT", "interval": "1m", "startTime": DAY_2020, "limit": 10}


def test_fault_429_with_retry_after_via_admin_api(client: httpx.Client) -> None:
    resp = client.post(
        "/_replay/faults", json={"kind": "429", "path_prefix": "/api/v3/klines", "times": 2, "retry_after": 3}
    )
    assert resp.status_code == 200
    (added,) = resp.json()["added"]
    assert added["kind"] == "rate_limit" and added["remaining"] == 2

    for _ in range(2):
        r = client.get("/api/v3/klines", params=KLINES)
        assert_error(
            r,
            -1003,
            re.compile(
                r"Too much request weight used; current limit is 6000 request weight "
                r"per 1 MINUTE\. .*"
            ),
            429,
        )
        assert r.headers["retry-after"] == "3"
        assert used_weight(r) > 0
    assert client.get("/api/v3/ping").status_code == 200  # other paths unaffected
    assert client.get("/api/v3/klines", params=KLINES).status_code == 200  # times=2 used up

    stats = client.get("/_replay/stats").json()
    assert stats["fault_hits"] == {added["id"]: 2}
    assert stats["fault_hits_by_kind"] == {"rate_limit": 2}
    assert stats["requests"]["/api/v3/klines"] == 3
    assert stats["statuses"] == {"429": 2, "200": 2}
    assert client.get("/_replay/faults").json() == {"faults": []}


def test_fault_418_ip_ban(client: httpx.Client, replay: ReplayServer) -> None:
    replay.add_fault("ip_ban", retry_after=120, times=1)
    before = int(time.time() * 1000)
    resp = client.get("/api/v3/time")
    assert_error(
        resp,
        -1003,
        re.compile(
            r"Way too much request weight used; IP banned until \d{13}\. "
            r"Please use WebSocket Streams for live updates to avoid bans\."
        ),
        418,
    )
    assert resp.headers["retry-after"] == "120"
    until = int(re.search(r"\d{13}", resp.json()["msg"]).group())
    assert before + 119_000 <= until <= int(time.time() * 1000) + 121_000
    assert client.get("/api/v3/time").status_code == 200


@pytest.mark.parametrize(("status", "code"), [(500, -1000), (502, -1001), (503, -1008), (504, -1007)])
def test_fault_5xx(client: httpx.Client, replay: ReplayServer, status: int, code: int) -> None:
    replay.add_fault("server_error", status=status, path_prefix="/api/v3/klines", times=1)
    resp = client.get("/api/v3/klines", params=KLINES)
    assert resp.status_code == status
    assert resp.json()["code"] == code
    assert_documented(code, resp.json()["msg"])
    assert client.get("/api/v3/klines", params=KLINES).status_code == 200


def test_fault_5xx_on_archive_and_custom_body(replay: ReplayServer, client: httpx.Client) -> None:
    replay.add_fault("5xx", status=503, path_prefix="/data/", times=1, retry_after=2)
    resp = client.get(f"{replay.archive_url}/daily/klines/BTCUSDT/1m/{ZIP_2020}")
    assert resp.status_code == 503 and resp.headers["retry-after"] == "2"
    assert resp.headers["content-type"].startswith("application/xml") and "<Error>" in resp.text
    assert client.get(f"{replay.archive_url}/daily/klines/BTCUSDT/1m/{ZIP_2020}").status_code == 200

    replay.add_fault("server_error", status=502, times=1, body="<html>502 Bad Gateway</html>")
    resp = client.get(f"{replay.api_url}/api/v3/ping")
    assert (resp.status_code, resp.text) == (502, "<html>502 Bad Gateway</html>")


def test_fault_delay(client: httpx.Client, replay: ReplayServer) -> None:
    replay.add_fault("delay", delay_seconds=0.5, path_prefix="/api/v3/ping", times=1)
    t0 = time.perf_counter()
    assert client.get("/api/v3/ping").status_code == 200
    slow = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert client.get("/api/v3/ping").status_code == 200
    fast = time.perf_counter() - t0
    assert slow >= 0.45 and fast < slow


def test_fault_delay_combines_with_a_status(client: httpx.Client, replay: ReplayServer) -> None:
    replay.set_faults([{"kind": "delay", "delay_seconds": 0.3, "times": 1}, {"kind": "rate_limit", "times": 1}])
    t0 = time.perf_counter()
    assert client.get("/api/v3/ping").status_code == 429
    assert time.perf_counter() - t0 >= 0.25


def test_fault_truncate_cut_connection(client: httpx.Client, replay: ReplayServer) -> None:
    replay.add_fault("truncate", path_prefix="/api/v3/klines", times=1)  # mode "cut"
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/api/v3/klines", params=KLINES)
    resp = client.get("/api/v3/klines", params=KLINES)  # the server is fine afterwards
    assert resp.status_code == 200 and len(resp.json()) == 10


def test_fault_truncate_half_body(client: httpx.Client, replay: ReplayServer) -> None:
    replay.add_fault("truncate", mode="half", path_prefix="/api/v3/klines", times=1)
    resp = client.get("/api/v3/klines", params=KLINES)
    assert resp.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.content)

    replay.add_fault("truncate", mode="half", path_prefix="/data/", times=1, fraction=0.5)
    half = client.get(f"{replay.archive_url}/daily/klines/BTCUSDT/1m/{ZIP_2020}")
    assert half.status_code == 200 and len(half.content) == ZIP_2020_PATH.stat().st_size // 2
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(half.content))
    whole = client.get(f"{replay.archive_url}/daily/klines/BTCUSDT/1m/{ZIP_2020}")
    assert whole.content == ZIP_2020_PATH.read_bytes()


def test_fault_bad_checksum(replay: ReplayServer, client: httpx.Client) -> None:
    replay.add_fault("bad_checksum", path_prefix="/data/spot/", times=1)
    url = f"{replay.archive_url}/daily/klines/BTCUSDT/1m/{ZIP_2020}"
    body = client.get(url).content  # the zip itself is untouched and does not use up the fault
    bad = client.get(url + ".CHECKSUM").text
    digest, name = bad.split("  ")
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and name == ZIP_2020
    assert digest != hashlib.sha256(body).hexdigest()
    check_checksum(body, client.get(url + ".CHECKSUM").content, ZIP_2020)


def test_fault_gap_in_rest_and_archive(replay: ReplayServer, client: httpx.Client) -> None:
    gap_start, gap_end = DAY_2020 + 600 * MINUTE_MS, DAY_2020 + 630 * MINUTE_MS  # 10:00-10:30 missing
    replay.add_fault("gap", symbol="BTCUSDT", interval="1m", gap_start_ms=gap_start, gap_end_ms=gap_end)

    rows = klines_paged(client, "BTCUSDT", "1m", DAY_2020, DAY_2020 + DAY_MS - 1)
    opens = [r[0] for r in rows]
    assert len(rows) == 1410
    assert not [t for t in opens if gap_start <= t < gap_end]
    assert opens[599:601] == [gap_start - MINUTE_MS, gap_end]

    url = f"{replay.archive_url}/daily/klines/BTCUSDT/1m/{ZIP_2020}"
    gapped = client.get(url).content
    assert gapped != ZIP_2020_PATH.read_bytes()
    _, lines = unzip_csv(gapped)
    assert [int(ln.split(",")[0]) for ln in lines] == opens
    check_checksum(gapped, client.get(url + ".CHECKSUM").content, ZIP_2020)  # a hole in the source itself

    other = client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1h", "limit": 1})
    assert other.status_code == 200  # other intervals unaffected
    assert replay.clear_faults() == 1
    assert len(klines_paged(client, "BTCUSDT", "1m", DAY_2020, DAY_2020 + DAY_MS - 1)) == 1440
    assert client.get(url).content == ZIP_2020_PATH.read_bytes()


def test_admin_faults_endpoints(client: httpx.Client) -> None:
    resp = client.post(
        "/_replay/faults",
        json={"faults": [{"kind": "418", "times": 1}, {"kind": "delay", "delay_seconds": 0.01}]},
    )
    ids = [f["id"] for f in resp.json()["added"]]
    assert [f["id"] for f in client.get("/_replay/faults").json()["faults"]] == ids
    assert client.delete(f"/_replay/faults/{ids[0]}").json() == {"cleared": 1}
    assert client.delete(f"/_replay/faults/{ids[0]}").status_code == 404
    replaced = client.post("/_replay/faults", json={"replace": True, "faults": [{"kind": "bad_checksum"}]}).json()
    assert [f["kind"] for f in replaced["faults"]] == ["bad_checksum"]
    assert client.delete("/_replay/faults").json() == {"cleared": 1}

    for invalid in (
        {"kind": "nope"},
        {"kind": "gap"},
        {"kind": "5xx", "status": 404},
        {"kind": "delay"},
        {"kind": "429", "times": 0},
        {"kind": "429", "unknown": 1},
    ):
        resp = client.post("/_replay/faults", json=invalid)
        assert resp.status_code == 400, invalid
    assert client.get("/_replay/faults").json() == {"faults": []}
    client.post("/_replay/faults", json=[{"kind": "500", "times": 1}])  # a bare status works as a kind
    assert client.get("/api/v3/ping").status_code == 500
    assert client.delete("/_replay/stats").json() == {"reset": True}
    assert client.get("/_replay/stats").json()["total_requests"] == 0


# -- aggTrades -----------------------------------------------------------------------------------
@needs_shared
def test_agg_trades_full_day_by_from_id(client: httpx.Client, replay: ReplayServer) -> None:
    first = client.get("/api/v3/aggTrades", params={"symbol": PERP, "startTime": DAY_2026, "limit": 1}).json()
    rows: list[dict[str, Any]] = []
    from_id = first[0]["a"]
    while True:
        resp = client.get("/api/v3/aggTrades", params={"symbol": PERP, "fromId": from_id, "limit": 1000})
        assert resp.status_code == 200, resp.text
        page = resp.json()
        if not page:
            break
        assert page[0]["a"] == from_id  # fromId is inclusive
        rows += page
        from_id = page[-1]["a"] + 1

    assert len(rows) == 105_280
    ids = [r["a"] for r in rows]
    assert ids == list(range(480_537_903, 480_537_903 + 105_280))
    assert all(b["f"] == a["l"] + 1 for a, b in itertools.pairwise(rows))
    assert all(a["T"] <= b["T"] for a, b in itertools.pairwise(rows))
    assert rows[0]["T"] == DAY_2026 + 20 and rows[-1]["T"] == DAY_2026 + DAY_MS - 345
    assert all(r["M"] is True and isinstance(r["m"], bool) and isinstance(r["p"], str) for r in rows)

    # identical to the archive zip (downloaded through the server), field by field
    body = client.get(f"{replay.futures_cm_archive_url}/daily/aggTrades/{PERP}/{PERP_ZIP}").content
    assert body == (SHARED / "futures-cm" / "aggTrades" / PERP_ZIP).read_bytes()
    check_checksum(
        body,
        client.get(f"{replay.futures_cm_archive_url}/daily/aggTrades/{PERP}/{PERP_ZIP}.CHECKSUM").content,
        PERP_ZIP,
        newline=True,
    )
    _, lines = unzip_csv(body)
    assert lines[0].startswith("agg_trade_id,")
    as_csv = [[str(r["a"]), r["p"], r["q"], str(r["f"]), str(r["l"]), str(r["T"]), str(r["m"]).lower()] for r in rows]
    assert as_csv == [ln.split(",") for ln in lines[1:]]
    # and through the shared parsers (is_best_match aside: the archive has no such column)
    parsed = list(trades_from_csv(PERP, lines[:1001]))
    assert [trade_from_rest(PERP, r).model_copy(update={"is_best_match": None}) for r in rows[:1000]] == parsed


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "streamforge.stack.binance_replay", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "--data-dir" in out and "--faults" in out and "--port" in out


def test_cli_serves_until_sigterm() -> None:
    faults = json.dumps([{"kind": "rate_limit", "path_prefix": "/api/v3/ping", "times": 1}])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamforge.stack.binance_replay",
            "--port",
            "0",
            "--data-dir",
            str(REPO_DATA_DIR.relative_to(REPO_ROOT)),
            "--faults",
            faults,
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        urls = json.loads(line)
        assert urls["archive_url"] == urls["api_url"] + "/data/spot"
        assert httpx.get(urls["api_url"] + "/api/v3/ping").status_code == 429  # --faults applied
        assert httpx.get(urls["api_url"] + "/api/v3/ping").status_code == 200
        # offline data dir only: the repo's BSD-3-Clause 2020 days, no recorded exchangeInfo needed
        info = httpx.get(urls["api_url"] + "/api/v3/exchangeInfo").json()
        assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT"]
        zip_2020 = httpx.get(f"{urls['archive_url']}/daily/klines/BTCUSDT/1m/{ZIP_2020}")
        assert zip_2020.content == ZIP_2020_PATH.read_bytes()
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.perf_counter() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_day_constants() -> None:
    assert datetime.fromtimestamp(DAY_2020 / 1000, UTC).isoformat() == "2020-01-01T00:00:00+00:00"
    assert datetime.fromtimestamp(AUG_2024 / 1000, UTC).isoformat() == "2024-08-01T00:00:00+00:00"
    assert datetime.fromtimestamp(DAY_2026 / 1000, UTC).isoformat() == "2026-05-08T00:00:00+00:00"
