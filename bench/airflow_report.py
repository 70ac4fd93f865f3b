"""`python -m bench airflow`: the Airflow-side benchmarks, one small table + JSON.

    dagbag    DagBag load of a 500-DAG catalog, StreamForge factory vs dag-factory (ratio)
    latency   REST trigger -> run success of one 1m day on the local stack
    backfill  31-day backfill of BTCUSDT api_candles_1h (2024-08), max_active_runs 8

Measurements, not tests. Results: bench/results/airflow-<UTC time>.json (gitignored). The
machine's load average is recorded with them: on 2 shared cores it moves every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ("dagbag", "latency", "backfill")


def _say(line: str) -> None:
    print(line, flush=True)


def _fmt(value: float | None, unit: str = "s") -> str:
    return "-" if value is None else f"{value:.1f}{unit}"


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []
    if d := results.get("dagbag"):
        ours, theirs = d["streamforge"], d["dag-factory"]
        rows += [
            (f"DagBag load, {d['dags']} DAGs: StreamForge factory", _fmt(ours["load_s_median"]),
             f"median of {d['repeat']}, max RSS {ours['max_rss_mb']:.0f} MB"),
            (f"DagBag load, {d['dags']} DAGs: dag-factory 1.1 YAML", _fmt(theirs["load_s_median"]),
             f"median of {d['repeat']}, max RSS {theirs['max_rss_mb']:.0f} MB"),
            ("  ratio StreamForge / dag-factory", f"{d['ratio_streamforge_over_dagfactory']:.3f}",
             "lower is faster; same task ids: " + str(d["same_task_ids"])),
        ]  # fmt: skip
    if s := results.get("stack_start_s"):
        rows.append(("local stack start (Kafka ... Airflow healthy)", _fmt(s), "this run"))
    if lat := results.get("latency"):
        rows += [
            ("trigger -> success, 1m day, first run (cold)", _fmt(lat["cold_s"]), ""),
            ("trigger -> success, 1m day, warm (median)", _fmt(lat["warm_median_s"]),
             f"{len(lat['samples']) - 1} run(s); all succeeded: {lat['all_succeeded']}"),
        ]  # fmt: skip
    if b := results.get("backfill"):
        notes = (f"{b['succeeded']}/{b['runs']} ok, docs ok {b['documents_ok']}, peak running "
                 f"{b['peak_running_seen']}, run median {_fmt(b['run_duration_median_s'])}")  # fmt: skip
        rows.append((f"backfill 31 days 1h, max_active_runs {b['max_active_runs']}", _fmt(b["wall_s"]), notes))
    width = max(len(r[0]) for r in rows) if rows else 10
    lines = [f"{'measurement':<{width}}  {'value':>9}  notes", "-" * (width + 40)]
    lines += [f"{name:<{width}}  {value:>9}  {notes}" for name, value, notes in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench airflow", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=PARTS, help="run only these parts (repeatable)")
    parser.add_argument("--symbols", type=int, default=250, help="catalog symbols (x2 types) for dagbag")
    parser.add_argument("--repeat", type=int, default=3, help="DagBag loads per variant")
    parser.add_argument("--latency-runs", type=int, default=3, help="triggered runs (the first is cold)")
    parser.add_argument("--max-active-runs", type=int, default=8)
    parser.add_argument("--parallelism", type=int, default=16, help="Airflow [core] parallelism of the stack")
    args = parser.parse_args(argv)
    parts = args.only or list(PARTS)

    began = time.monotonic()
    results: dict[str, Any] = {}
    meta = {"started_at": datetime.now(UTC).isoformat(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_average_before": os.getloadavg(), "parts": parts}  # fmt: skip
    if "dagbag" in parts:
        from bench.airflow_dagbag import run

        _say(f"dagbag: {2 * args.symbols} DAGs, {args.repeat} load(s) each")
        results["dagbag"] = run(args.symbols, args.repeat, log=_say)
    if {"latency", "backfill"} & set(parts):
        from bench import airflow_runs
        from streamforge.stack.local import LocalStack

        stack = LocalStack(parallelism=args.parallelism, log=lambda line: _say(f"  {line}"))
        started = time.monotonic()
        _say("local stack: starting")
        try:
            stack.start()
            results["stack_start_s"] = time.monotonic() - started
            if "latency" in parts:
                _say(f"latency: {args.latency_runs} triggered run(s)")
                results["latency"] = airflow_runs.latency(stack, args.latency_runs, log=_say)
            if "backfill" in parts:
                _say(f"backfill: 31 days, max_active_runs {args.max_active_runs}")
                results["backfill"] = airflow_runs.backfill_month(stack, args.max_active_runs, log=_say)
        finally:
            stack.cleanup()
    meta |= {"load_average_after": os.getloadavg(), "wall_s": time.monotonic() - began}

    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / f"airflow-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    output.write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str) + "\n")
    print("\n" + table(results))
    if d := results.get("dagbag"):
        print(f"\nnote: {d['notes']}")
    print(f"\nload average before/after: {meta['load_average_before']} / {meta['load_average_after']}")
    print(f"results: {output.relative_to(Path.cwd()) if output.is_relative_to(Path.cwd()) else output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
