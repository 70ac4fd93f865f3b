"""Run benchmarks on the local stack (real scheduler, workers as child processes, offline replay).

* latency: REST trigger of one 1m day (BTCUSDT 2020-01-02, conf start/end) until the run's state
  reads `success` (polled every 0.5 s). The first run of a fresh stack is reported apart (cold).
* backfill: `POST /api/v2/backfills` of BTCUSDT api_candles_1h over 2024-08 (31 runs) with
  max_active_runs 8, until every run finished; checks 31 collections x 24 documents.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from streamforge.contracts.names import collection_name
from streamforge.stack import local as sf
from streamforge.stack.local import LocalStack

DAG_1M = "streamforge__btcusdt__api_candles_1m"
DAG_1H = "streamforge__btcusdt__api_candles_1h"
LATENCY_CONF = {"start": "2020-01-02", "end": "2020-01-03"}
MONTH_FIRST, MONTH_LAST = date(2024, 8, 1), date(2024, 8, 31)


def latency(stack: LocalStack, runs: int = 3, log: Callable[[str], None] = print) -> dict[str, Any]:
    assert stack.airflow is not None
    stack.airflow.wait_for_dag(DAG_1M)
    samples: list[dict[str, Any]] = []
    with stack.client() as api:
        sf.unpause(api, DAG_1M)
        for i in range(runs):
            began = time.monotonic()
            run = sf.trigger(api, DAG_1M, LATENCY_CONF)
            done = sf.wait_for_run(api, DAG_1M, run["dag_run_id"], timeout=600, poll=0.5)
            seconds = time.monotonic() - began
            samples.append({"seconds": seconds, "state": done["state"], "run_duration": sf.run_seconds(done)})
            log(f"  latency run {i + 1}/{runs}: {done['state']} after {seconds:.1f}s")
    warm = [s["seconds"] for s in samples[1:] if s["state"] == "success"]
    return {
        "cold_s": samples[0]["seconds"],
        "warm_median_s": statistics.median(warm) if warm else None,
        "all_succeeded": all(s["state"] == "success" for s in samples),
        "samples": samples,
    }


def backfill_month(stack: LocalStack, max_active_runs: int = 8, log: Callable[[str], None] = print) -> dict[str, Any]:
    assert stack.airflow is not None and stack.arango is not None
    stack.airflow.wait_for_dag(DAG_1H)
    days = [MONTH_FIRST + timedelta(days=i) for i in range((MONTH_LAST - MONTH_FIRST).days + 1)]
    first, last = MONTH_FIRST.isoformat(), MONTH_LAST.isoformat()
    peak_running, reported = 0, -1
    with stack.client() as api:
        sf.unpause(api, DAG_1H)
        began = time.monotonic()
        sf.create_backfill(api, DAG_1H, f"{first}T00:00:00Z", f"{last}T00:00:00Z", max_active_runs=max_active_runs)
        while True:
            runs = sf.backfill_runs(api, DAG_1H, first, last)
            peak_running = max(peak_running, sum(r["state"] == "running" for r in runs))
            finished = [r for r in runs if r["state"] in sf.TERMINAL_RUN_STATES]
            if len(finished) != reported:
                reported = len(finished)
                log(f"  backfill: {len(finished)}/{len(days)} runs finished after {time.monotonic() - began:.0f}s")
            if len(finished) == len(days):
                break
            if time.monotonic() - began > 3600:
                raise TimeoutError(f"backfill of {DAG_1H} not finished after an hour")
            time.sleep(2)
        wall = time.monotonic() - began
    db = stack.arango.db()
    docs = {}
    for day in days:
        name = collection_name("BTCUSDT", "api_candles_1h", datetime.combine(day, datetime.min.time(), UTC))
        docs[day.isoformat()] = db.collection(name).count() if db.has_collection(name) else 0
    durations = [d for r in runs if (d := sf.run_seconds(r)) is not None]
    return {
        "runs": len(runs),
        "succeeded": sum(r["state"] == "success" for r in runs),
        "wall_s": wall,
        "max_active_runs": max_active_runs,
        "peak_running_seen": peak_running,
        "run_duration_median_s": statistics.median(durations) if durations else None,
        "documents_ok": all(n == 24 for n in docs.values()),
        "documents_total": sum(docs.values()),
        "failed_runs": sorted(r["dag_run_id"] for r in runs if r["state"] != "success"),
    }
