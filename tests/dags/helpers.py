"""Helpers of the DAG tests (no fixtures here, so subprocess runners can import them)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
SHIPPED_CATALOG = DAGS / "streamforge_catalog.yaml"
DAG_1M = "streamforge__btcusdt__api_candles_1m"


def shipped_catalog_data() -> dict[str, Any]:
    return yaml.safe_load(SHIPPED_CATALOG.read_text())


def catalog_data(pipelines: list[dict[str, Any]] | None = None, **defaults: Any) -> dict[str, Any]:
    """The shipped catalog with other pipelines and defaults deep-merged over its defaults."""
    from streamforge.orchestration.catalog import deep_merge

    data = copy.deepcopy(shipped_catalog_data())
    data["defaults"] = deep_merge(data["defaults"], defaults)
    if pipelines is not None:
        data["pipelines"] = pipelines
    return data


def write_catalog(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
