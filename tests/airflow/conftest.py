"""The long runs of the Airflow suite, started together once so they overlap.

`scenario` (session) creates, through the REST API of the session's stack, the backfill of
BTCUSDT 1m 2020-01-01..03 and two manual runs of 2020-01-02 (one per source) at the same time;
plus a run whose window is valid JSON but empty (end before start), which
only `plan` can refuse; each slow test then only waits for its own runs. A test asking for `scenario` first (any of
them) pays for all of them; the fast tests never ask for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from streamforge.stack import local as sf
from streamforge.stack.local import LocalStack

DAG_1M = "streamforge__btcusdt__api_candles_1m"
BACKFILL_FROM, BACKFILL_TO = "2020-01-01", "2020-01-03"
DAY = {"start": "2020-01-02", "end": "2020-01-03"}
SOURCES = ("archive", "rest")
RUN_TIMEOUT = 420.0


@dataclass
class Scenario:
    started: float
    backfill: dict[str, Any]
    manual: dict[str, str] = field(default_factory=dict)  # source -> dag_run_id
    reversed_window: str = ""  # dag_run_id of the run with end < start


@pytest.fixture(scope="session")
def scenario(airflow_stack: LocalStack) -> Scenario:
    assert airflow_stack.airflow is not None
    airflow_stack.airflow.wait_for_dag(DAG_1M)
    with airflow_stack.client() as api:
        sf.unpause(api, DAG_1M)
        started = time.monotonic()
        backfill = sf.create_backfill(api, DAG_1M, f"{BACKFILL_FROM}T00:00:00Z", f"{BACKFILL_TO}T00:00:00Z",
                                      max_active_runs=3)  # fmt: skip
        result = Scenario(started=started, backfill=backfill)
        for source in SOURCES:
            run = sf.trigger(api, DAG_1M, {**DAY, "source": source})
            result.manual[source] = run["dag_run_id"]
        bad = sf.trigger(api, DAG_1M, {"start": "2020-01-03", "end": "2020-01-02"})
        result.reversed_window = bad["dag_run_id"]
    return result
