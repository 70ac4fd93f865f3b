"""The example downstream of a load: hourly candles rolled up from 1m candles (dags/streamforge_rollup.py).

Runs on the Asset events of `data_asset(symbol, "api_candles_1m")` (orchestration/assets.py):
each event's extra names the window and the collection(s) loaded; the hours it covers are read
by document key (no AQL beyond contracts.aql) and written to `{symbol}_rollup_1h` with key
`{SYMBOL}_1h_{open_time}`, so a re-run replaces the same documents. An hour touched by an
exchange gap is rolled up from the candles that exist and says how many it has (`candles`).
"""

from __future__ import annotations

import logging
from typing import Any

from streamforge.contracts.names import INTERVALS

log = logging.getLogger(__name__)

HOUR_MS, MINUTE_MS = 3_600_000, 60_000


def rollup_collection(symbol: str) -> str:
    return f"{symbol.lower()}_rollup_1h"


def roll_up(db: Any, symbol: str, extra: dict[str, Any]) -> int:
    """Roll up the hours of one load event; returns the number of hourly documents written."""
    from datetime import datetime

    start = int(datetime.fromisoformat(extra["start"].replace("Z", "+00:00")).timestamp() * 1000)
    end = int(datetime.fromisoformat(extra["end"].replace("Z", "+00:00")).timestamp() * 1000)
    hours = []
    for collection in extra.get("collections") or []:
        source = db.collection(collection)
        for hour in INTERVALS["1h"].open_times(start - start % HOUR_MS, end):
            keys = [f"{symbol}_1m_{t}" for t in range(hour, hour + HOUR_MS, MINUTE_MS)]
            candles = sorted((d for d in source.get_many(keys) if d), key=lambda d: d["open_time"])
            if candles:
                hours.append(_hour(symbol, hour, candles))
    if not hours:
        return 0
    name = rollup_collection(symbol)
    if not db.has_collection(name):
        db.create_collection(name)
    db.collection(name).insert_many(hours, overwrite_mode="replace", raise_on_document_error=True)
    log.info("rolled up %d hour(s) of %s into %s", len(hours), symbol, name)
    return len(hours)


def _hour(symbol: str, open_time: int, candles: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "_key": f"{symbol}_1h_{open_time}",
        "symbol": symbol,
        "interval": "1h",
        "open_time": open_time,
        "open": candles[0]["open"],
        "high": max(c["high"] for c in candles),
        "low": min(c["low"] for c in candles),
        "close": candles[-1]["close"],
        "volume": sum(c["volume"] for c in candles),
        "number_of_trades": sum(c["number_of_trades"] for c in candles),
        "candles": len(candles),
    }
