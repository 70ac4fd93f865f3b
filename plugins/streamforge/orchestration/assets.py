"""The Airflow Asset of a data set (ARCHITECTURE §6): one per symbol x data type.

`verify` has it as its outlet, so every successful run emits one Asset event whose extra says
what was loaded (`LoadEvent`). Downstream DAGs schedule on `data_asset(symbol, type)` and read
the extra (dags/streamforge_rollup.py is the example).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset
from pydantic import BaseModel, ConfigDict

from streamforge.contracts.names import DataType, validate_symbol

ASSET_GROUP = "streamforge"


def data_asset(symbol: str, data_type: str, market: str = "spot") -> Asset:
    """`binance/spot/BTCUSDT/api_candles_1m` (name) and `binance://spot/BTCUSDT/api_candles_1m` (URI)."""
    path = f"{market}/{validate_symbol(symbol)}/{DataType.parse(data_type).name}"
    return Asset(name=f"binance/{path}", uri=f"binance://{path}", group=ASSET_GROUP)


class LoadEvent(BaseModel):
    """The extra of a load's Asset event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str  # ISO 8601, UTC, inclusive
    end: str  # exclusive
    records: int
    gaps: list[dict[str, Any]]  # contracts.gaps.Gap documents
    collections: list[str]
    source: str  # auto | rest | archive (the run's param)
    repairs: list[dict[str, Any]] = []
    reason: str | None = None  # why a run loaded nothing (before listing, delisted)
