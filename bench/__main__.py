"""`python -m bench <name> [args]`: run one benchmark (results: printed table + bench/results/*.json)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "airflow": ("bench.airflow_report", "DagBag load vs dag-factory, trigger latency, 31-day backfill (Airflow)"),
    "workers": ("bench.workers_pipeline", "loader → Kafka → sink throughput vs the original pattern and raw Kafka"),
    "history": ("bench.history", "a year of 1m candles: monthly DAG vs daily DAG backfill, days of data per minute"),
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or args[0] not in BENCHMARKS:
        print("usage: python -m bench <name> [args]\n\nbenchmarks:")
        for name, (_, text) in BENCHMARKS.items():
            print(f"  {name:<10} {text}")
        return 0 if args and args[0] in ("-h", "--help") else 2
    module = importlib.import_module(BENCHMARKS[args[0]][0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
