"""`python -m bench history`: a year of 1m candles, monthly DAG vs daily DAG backfill (days of data per minute).

One symbol (BTCUSDT api_candles_1m), 12 consecutive SYNTHETIC months (2021-01..2021-12, 365 days,
525,600 candles: the real bundled 1m days 2020-01-01..03 repeated and shifted in time by
streamforge.stack.binance_replay.synthetic, labelled SYNTHETIC.md, served by the replay with
correct .CHECKSUMs). On the local stack (real Airflow scheduler, workers as child processes):

* daily:   `POST /api/v2/backfills` of `streamforge__btcusdt__api_candles_1m` over the first
           `--daily-days` days (a real backfill of a subset: a whole year of daily runs would take
           about half an hour); its rate is measured, the year's time is EXTRAPOLATED and labelled so;
* monthly: `POST /api/v2/backfills` of `…__monthly` over the 12 months (the catalog entry declares
           `history: {since: 2021-01-01, window: month}`).

Both with the same max_active_runs and catalog; wall time from the backfill request until every
run finished; documents checked (1440 per day collection). Reported: days of data per minute of
each and their ratio (same machine, same run). Results: bench/results/history-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from streamforge.contracts.names import collection_name

RESULTS = Path(__file__).resolve().parent / "results"
SYMBOL, TYPE = "BTCUSDT", "api_candles_1m"
DAILY = f"streamforge__{SYMBOL.lower()}__{TYPE}"
FIRST_MONTH = date(2021, 1, 1)
CANDLES_PER_DAY = 1440


def _say(line: str) -> None:
    print(line, flush=True)


def _months(first: date, count: int) -> list[date]:
    out, month = [], first
    for _ in range(count):
        out.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return out


def backfill(
    stack: Any, dag_id: str, first: date, last: date, runs: int, max_active_runs: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Create one backfill of [first, last] (logical dates) and wait until its `runs` runs finished."""
    from streamforge.stack import local as sf

    assert stack.airflow is not None
    stack.airflow.wait_for_dag(dag_id)
    with stack.client() as api:
        sf.unpause(api, dag_id)
        began = time.monotonic()
        sf.create_backfill(api, dag_id, f"{first}T00:00:00Z", f"{last}T00:00:00Z", max_active_runs=max_active_runs)
        reported = -1
        while True:
            found = sf.backfill_runs(api, dag_id, first.isoformat(), last.isoformat())
            finished = [r for r in found if r["state"] in sf.TERMINAL_RUN_STATES]
            if len(finished) != reported:
                reported = len(finished)
                log(f"  {dag_id}: {len(finished)}/{runs} runs finished after {time.monotonic() - began:.0f}s")
            if len(found) == runs and len(finished) == runs:
                break
            if time.monotonic() - began > 3600:
                raise TimeoutError(f"backfill of {dag_id} not finished after an hour")
            time.sleep(2)
        wall = time.monotonic() - began
        failures = {r["dag_run_id"]: _why(api, dag_id, r["dag_run_id"]) for r in found if r["state"] != "success"}
        tasks = task_breakdown(api, dag_id, [r["dag_run_id"] for r in found])
    durations = [d for r in found if (d := sf.run_seconds(r)) is not None]
    return {
        "tasks": tasks,
        "dag_id": dag_id,
        "runs": len(found),
        "succeeded": sum(r["state"] == "success" for r in found),
        "failed_runs": failures,
        "wall_s": wall,
        "run_duration_median_s": statistics.median(durations) if durations else None,
    }


def task_breakdown(api: Any, dag_id: str, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per task id over the runs: median seconds queued (queued → start) and running (start → end),
    and how many tries ran (a reschedule sensor's pokes are tries of one task instance)."""
    from streamforge.stack import local as sf

    queued: dict[str, list[float]] = {}
    running: dict[str, list[float]] = {}
    states: dict[str, dict[str, int]] = {}
    for run_id in run_ids:
        body = sf.check(api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}))
        for ti in body["task_instances"]:
            task = ti["task_id"]
            counts = states.setdefault(task, {})
            counts[ti["state"] or "none"] = counts.get(ti["state"] or "none", 0) + 1
            if ti.get("queued_when") and ti.get("start_date"):
                queued.setdefault(task, []).append(_seconds(ti["queued_when"], ti["start_date"]))
            if ti.get("start_date") and ti.get("end_date"):
                running.setdefault(task, []).append(_seconds(ti["start_date"], ti["end_date"]))
    return {
        task: {
            "states": counts,
            "queued_median_s": round(statistics.median(queued[task]), 1) if queued.get(task) else None,
            "running_median_s": round(statistics.median(running[task]), 1) if running.get(task) else None,
        }
        for task, counts in states.items()
    }


def _seconds(first: str, last: str) -> float:
    return (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()


def _why(api: Any, dag_id: str, run_id: str) -> dict[str, Any]:
    """A failed run's failed tasks and the watcher's alert (the root cause, as alerts name it)."""
    from streamforge.orchestration.alerts import ALERT_XCOM_KEY
    from streamforge.stack import local as sf

    failed = sorted(t for (_, t), state in sf.task_states(api, dag_id, run_id).items() if state == "failed")
    try:
        alert = sf.xcom(api, dag_id, run_id, "watcher", ALERT_XCOM_KEY)
    except Exception as exc:  # no alert recorded: say so rather than lose the other facts
        alert = f"no alert: {exc}"
    logs = {task: _log_tail(api, dag_id, run_id, task) for task in failed if task != "watcher"}
    return {"failed_tasks": failed, "alert": alert, "log_tails": logs}


def _log_tail(api: Any, dag_id: str, run_id: str, task_id: str, lines: int = 12) -> list[str]:
    """The last lines of the task's latest try (what its failure says)."""
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
    try:
        tries = api.get(path).json().get("try_number") or 1
        body = api.get(f"{path}/logs/{tries}", headers={"Accept": "application/json"}).json()
    except Exception as exc:  # a diagnostic: say why it is missing rather than fail the report
        return [f"no log: {exc}"]
    content = body.get("content") or []
    text = [c.get("event", str(c)) if isinstance(c, dict) else str(c) for c in content]
    return text[-lines:]


def documents(stack: Any, days: list[date]) -> dict[str, int]:
    db = stack.arango.db()
    out = {}
    for day in days:
        name = collection_name(SYMBOL, TYPE, datetime.combine(day, datetime.min.time(), UTC))
        out[day.isoformat()] = db.collection(name).count() if db.has_collection(name) else 0
    return out


def run(
    months: int,
    daily_days: int,
    max_active_runs: int,
    parallelism: int,
    sensor: dict[str, Any],
    log: Callable[[str], None],
) -> dict:
    from streamforge.stack.binance_replay import ReplayServer
    from streamforge.stack.binance_replay.catalog import default_data_dirs
    from streamforge.stack.binance_replay.synthetic import write_kline_months
    from streamforge.stack.local import LocalStack

    month_starts = _months(FIRST_MONTH, months)
    end = _months(month_starts[-1], 2)[1]
    days = [FIRST_MONTH + timedelta(days=i) for i in range((end - FIRST_MONTH).days)]
    daily_sample = days[:daily_days]
    results: dict[str, Any] = {"days": len(days), "months": months, "max_active_runs": max_active_runs,
                               "parallelism": parallelism, "sensor": sensor}  # fmt: skip
    root = Path(tempfile.mkdtemp(prefix="sf-synthetic-binance-"))
    began = time.monotonic()
    write_kline_months(root, FIRST_MONTH, months, symbol=SYMBOL, interval="1m")
    results["synthetic"] = {"root": str(root), "label": (root / "SYNTHETIC.md").read_text(),
                            "write_s": time.monotonic() - began}  # fmt: skip
    log(f"synthetic data: {months} months of {SYMBOL} 1m in {results['synthetic']['write_s']:.1f}s ({root})")
    pipelines = [{"name": "history-bench", "symbols": [SYMBOL], "types": [TYPE],
                  "overrides": {"history": {"since": FIRST_MONTH.isoformat(), "window": "month"},
                                "max_active_runs": max_active_runs, "sensor": sensor}}]  # fmt: skip
    with ReplayServer(data_dirs=[*default_data_dirs(), root]) as replay:
        stack = LocalStack(binance=replay, parallelism=parallelism, catalog_overrides={"pipelines": pipelines},
                           log=lambda line: log(f"  {line}"))  # fmt: skip
        log("local stack: starting")
        try:
            stack.start()
            log(f"daily DAG: backfill of {len(daily_sample)} days")
            daily = backfill(stack, DAILY, daily_sample[0], daily_sample[-1], len(daily_sample), max_active_runs, log)
            daily["documents"] = documents(stack, daily_sample)
            log(f"monthly DAG: backfill of {months} months ({len(days)} days)")
            monthly_id = f"{DAILY}__monthly"
            monthly = backfill(stack, monthly_id, month_starts[0], month_starts[-1], months, max_active_runs, log)
            monthly["documents"] = documents(stack, days)
        finally:
            stack.cleanup()
    for part, n in ((daily, len(daily_sample)), (monthly, len(days))):
        part["days"] = n
        part["days_per_minute"] = n / (part["wall_s"] / 60)
        part["documents_ok"] = all(v == CANDLES_PER_DAY for v in part.pop("documents").values())
    daily["extrapolated_year_s"] = len(days) / daily["days_per_minute"] * 60
    results |= {"daily": daily, "monthly": monthly, "ratio_monthly_over_daily":
                monthly["days_per_minute"] / daily["days_per_minute"]}  # fmt: skip
    return results


def table(r: dict[str, Any]) -> str:
    d, m = r["daily"], r["monthly"]
    rows = [
        (f"daily DAG backfill, {d['days']} days (measured)", f"{d['days_per_minute']:.1f}",
         f"wall {d['wall_s']:.0f}s, {d['succeeded']}/{d['runs']} runs ok, docs ok {d['documents_ok']}, "
         f"run median {d['run_duration_median_s'] or 0:.0f}s"),
        (f"daily DAG, {r['days']} days (EXTRAPOLATED from the line above)", f"{d['days_per_minute']:.1f}",
         f"would take {d['extrapolated_year_s'] / 60:.0f} min"),
        (f"monthly DAG backfill, {m['runs']} months = {m['days']} days (measured)", f"{m['days_per_minute']:.1f}",
         f"wall {m['wall_s']:.0f}s, {m['succeeded']}/{m['runs']} runs ok, docs ok {m['documents_ok']}, "
         f"run median {m['run_duration_median_s'] or 0:.0f}s"),
        ("  ratio monthly / daily (days per minute)", f"{r['ratio_monthly_over_daily']:.1f}x", "target >= 20x"),
    ]  # fmt: skip
    for part in (d, m):
        rows.append((f"  {part['dag_id']}: median s queued / running per task", "", ""))
        rows += [(f"    {task}", "", f"{t['queued_median_s']} / {t['running_median_s']}  {t['states']}")
                 for task, t in part.get("tasks", {}).items()]  # fmt: skip
    width = max(len(row[0]) for row in rows)
    lines = [f"{'BTCUSDT 1m, SYNTHETIC 2021 (real days shifted)':<{width}}  {'days/min':>9}  notes"]
    lines += ["-" * (width + 60)] + [f"{a:<{width}}  {b:>9}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench history", description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=12, help="synthetic months from 2021-01 (monthly DAG runs)")
    parser.add_argument("--daily-days", type=int, default=12, help="days of the daily DAG's real backfill")
    parser.add_argument("--max-active-runs", type=int, default=12, help="of both DAGs and both backfills")
    parser.add_argument(
        "--parallelism",
        type=int,
        default=None,
        help="Airflow [core] parallelism (default: room for every waiting task of every active run)",
    )
    parser.add_argument(
        "--sensor-mode",
        choices=("poke", "reschedule"),
        default="poke",
        help="catalog sensor.mode of the pipeline (both DAGs)",
    )
    parser.add_argument("--poke-interval", type=float, default=3, help="catalog sensor.poke_interval_seconds")
    args = parser.parse_args(argv)
    # Three waiting tasks per active run (both workers and the outcome sensor), plus plan/verify/...
    parallelism = args.parallelism or 3 * args.max_active_runs + 8
    sensor = {"mode": args.sensor_mode, "poke_interval_seconds": args.poke_interval}
    meta = {"started_at": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_average_before": os.getloadavg()}  # fmt: skip
    began = time.monotonic()
    results = run(args.months, args.daily_days, args.max_active_runs, parallelism, sensor, _say)
    meta |= {"load_average_after": os.getloadavg(), "wall_s": time.monotonic() - began}
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / f"history-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    output.write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str) + "\n")
    print("\n" + table(results))
    for part in ("daily", "monthly"):
        for run_id, why in results[part]["failed_runs"].items():
            print(f"FAILED {results[part]['dag_id']} {run_id}: {why}")
    print(f"\nload average before/after: {meta['load_average_before']} / {meta['load_average_after']}")
    print(f"results: {output}")
    return 0 if results["daily"]["documents_ok"] and results["monthly"]["documents_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
