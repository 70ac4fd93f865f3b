"""Shared fixtures of the DAG tests (the private AIRFLOW_HOME is set by tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.dags.helpers import REPO, SHIPPED_CATALOG


@pytest.fixture(autouse=True)
def _shipped_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see the shipped catalog and runner unless they set their own."""
    monkeypatch.delenv("STREAMFORGE_CATALOG", raising=False)
    monkeypatch.delenv("STREAMFORGE_RUNNER", raising=False)
    from streamforge.orchestration.catalog import load_catalog

    load_catalog.cache_clear()


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shipped_catalog() -> Path:
    return SHIPPED_CATALOG


@pytest.fixture(scope="session")
def dagbag():  # type: ignore[no-untyped-def]
    """The DAGs of the repo's dags/ folder with the shipped catalog (runner kubernetes)."""
    saved = {k: os.environ.pop(k) for k in ("STREAMFORGE_CATALOG", "STREAMFORGE_RUNNER") if k in os.environ}
    try:
        from airflow.dag_processing.dagbag import DagBag

        from streamforge.orchestration.catalog import load_catalog

        load_catalog.cache_clear()
        return DagBag(dag_folder=str(REPO / "dags"))
    finally:
        os.environ.update(saved)
