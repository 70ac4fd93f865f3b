"""README command 1 (`streamforge demo`, `make demo`): a real Airflow backfill of BTCUSDT 1m, 2020-01-01..03.

Starts the whole local stack (plugins/streamforge/stack/local.py), creates the backfill through the REST
API (`POST /api/v2/backfills`), lets Airflow's scheduler run it (loader and sink as child
processes of the tasks, Kafka, ArangoDB), prints one line per run/task state change, then a
per-day summary. Offline by default: the Binance replay server serves the bundled real data
(streamforge/stack/binance_replay/data/binance); `--live` uses the real Binance.

Exit status 0 only if all three runs succeeded with 1440 documents each.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from streamforge.stack.local import (
    LocalStack,
    backfill_runs,
    create_backfill,
    run_seconds,
    task_states,
    unpause,
)

SYMBOL = "BTCUSDT"
DATA_TYPE = "api_candles_1m"
DAG_ID = "streamforge__btcusdt__api_candles_1m"
FIRST_DAY, LAST_DAY = date(2020, 1, 1), date(2020, 1, 3)
EXPECTED_DOCS = 1440


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def collection(day: date) -> str:
    from streamforge.contracts.names import collection_name

    return collection_name(SYMBOL, DATA_TYPE, datetime.combine(day, datetime.min.time(), UTC))


class Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        print(f"[{self():6.1f}s] {text}", flush=True)


def run_day(run: dict[str, Any]) -> str:
    return (run.get("logical_date") or run["dag_run_id"])[:10]


def watch_backfill(
    api: httpx.Client,
    dag_id: str,
    first: date,
    last: date,
    say: Callable[[str], None],
    timeout: float = 600,
    poll: float = 2.0,
) -> list[dict[str, Any]]:
    """Poll the backfill's runs and their tasks; report each change; return the finished runs."""
    seen: dict[tuple[str, str], str | None] = {}
    expected_runs = len(days(first, last))
    deadline = time.monotonic() + timeout
    while True:
        runs = backfill_runs(api, dag_id, first.isoformat(), last.isoformat())
        day_of = {r["dag_run_id"]: run_day(r) for r in runs}
        tasks = task_states(api, dag_id) if runs else {}
        for (run_id, task_id), state in sorted(tasks.items(), key=lambda kv: (day_of.get(kv[0][0], ""), kv[0][1])):
            if run_id in day_of and state and seen.get((run_id, task_id)) != state:
                seen[(run_id, task_id)] = state
                say(f"{day_of[run_id]}  {task_id:<14} {state}")
        for run in runs:
            if seen.get((run["dag_run_id"], "")) != run["state"]:
                seen[(run["dag_run_id"], "")] = run["state"]
                took = run_seconds(run)
                say(f"{run_day(run)}  {'RUN':<14} {run['state'].upper()}"
                    + (f" in {took:.1f}s" if took is not None else ""))  # fmt: skip
        if len(runs) >= expected_runs and all(r["state"] in ("success", "failed") for r in runs):
            return sorted(runs, key=run_day)
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {first}..{last} not finished after {timeout:.0f}s")
        time.sleep(poll)


def failed_task_logs(stack: LocalStack, runs: list[dict[str, Any]], lines: int = 25) -> str:
    """The tail of each failed task's log file (local log folder of the stack)."""
    assert stack.airflow is not None
    out = []
    with stack.client() as api:
        for run in runs:
            for (run_id, task_id), state in task_states(api, DAG_ID, run["dag_run_id"]).items():
                if state != "failed":
                    continue
                folder = stack.airflow.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
                for log in sorted(folder.glob("attempt=*.log"))[-1:]:
                    tail = log.read_text(errors="replace").splitlines()[-lines:]
                    out.append(f"--- {run_day(run)} {task_id} ({log})\n" + "\n".join(tail))
    return "\n".join(out)


def summary(stack: LocalStack, runs: list[dict[str, Any]], wanted: list[date]) -> tuple[str, bool]:
    by_day = {run_day(r): r for r in runs}
    rows, ok = [], True
    for day in wanted:
        run = by_day.get(day.isoformat())
        state = run["state"] if run else "missing"
        docs = stack.collection_count(collection(day))
        took = run_seconds(run) if run else None
        ok &= state == "success" and docs == EXPECTED_DOCS
        rows.append(f"{day.isoformat():<12}{state:<10}{docs:>10}{(f'{took:.1f}s' if took else '-'):>12}")
    header = f"{'day':<12}{'run':<10}{'documents':>10}{'duration':>12}"
    return "\n".join([header, "-" * len(header), *rows]), ok


def print_next_steps() -> None:
    print(f"""
Next steps
  * Start the same stack and keep it up:   streamforge up   (--state-dir DIR keeps its data)
    It prints the UI URL (user `admin`, password in the printed passwords file) and an env file
    for the CLI: `. .stack/up/airflow.env` makes `airflow ...` commands talk to that stack.
  * Trigger a day from the UI: DAG {DAG_ID} -> Trigger -> set start/end/source.
  * Or over REST (token from POST /auth/token):
      curl -X POST $URL/api/v2/dags/{DAG_ID}/dagRuns -H "Authorization: Bearer $TOKEN" \\
           -H 'Content-Type: application/json' \\
           -d '{{"logical_date": null, "conf": {{"start": "2020-01-02", "end": "2020-01-03", "source": "rest"}}}}'
  * A backfill, after `. .stack/up/airflow.env`:
      .venv/bin/airflow backfill create --dag-id {DAG_ID} --from-date 2020-01-01 --to-date 2020-01-03
    or POST /api/v2/backfills (also the UI's "Backfill" dialog).""")


def run(*, live: bool = False, max_active_runs: int = 3, timeout: float = 600, keep: bool = False) -> int:
    """The demo; returns the exit status (0: every day succeeded with all its documents)."""
    clock = Clock()
    source = "the real Binance (--live)" if live else "the Binance replay server (bundled real data, offline)"
    clock.say(f"StreamForge demo: backfill {DAG_ID} {FIRST_DAY}..{LAST_DAY} from {source}")
    stack = LocalStack(live=live, log=clock.say)
    ok = False
    try:
        stack.start()
        assert stack.airflow is not None
        clock.say(f"Airflow UI {stack.airflow.url} (admin, password in {stack.airflow.home / 'passwords.json'})")
        stack.airflow.wait_for_dag(DAG_ID)
        clock.say(f"DAG {DAG_ID} parsed")
        with stack.client() as api:
            unpause(api, DAG_ID)
            backfill = create_backfill(api, DAG_ID, f"{FIRST_DAY}T00:00:00Z", f"{LAST_DAY}T00:00:00Z",
                                       max_active_runs=max_active_runs)  # fmt: skip
            began = clock()
            clock.say(f"POST /api/v2/backfills -> backfill {backfill['id']}, max_active_runs {max_active_runs}")
            wanted = days(FIRST_DAY, LAST_DAY)
            runs = watch_backfill(api, DAG_ID, FIRST_DAY, LAST_DAY, clock.say, timeout=timeout)
        clock.say(f"backfill finished in {clock() - began:.1f}s")
        table, ok = summary(stack, runs, wanted)
        print("\n" + table)
        if not ok:
            print("\nFAILED: every day must succeed with 1440 documents.\n" + failed_task_logs(stack, runs))
    except Exception as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        if stack.airflow is not None:
            for component in ("scheduler", "dag-processor"):
                print(f"--- {component} log tail\n{stack.airflow.log_tail(component, 30)}", file=sys.stderr)
    finally:
        stack.stop()
        if keep or not ok:
            print(f"\nStack files (logs, catalog): {stack.home}")
        else:
            stack.cleanup()
    print(f"\nDemo {'succeeded' if ok else 'FAILED'}; wall time {clock():.1f}s.")
    if ok:
        print_next_steps()
    return 0 if ok else 1


if __name__ == "__main__":
    from streamforge.cli import app

    app(["demo", *sys.argv[1:]])
