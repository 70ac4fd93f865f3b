"""Two maintenance DAGs over the whole catalog (ARCHITECTURE §6):

* `streamforge__coverage` (daily) — measures the coverage of every pipeline with declared
  history (orchestration/coverage.py) and records a summary: task log, XCom `return_value`
  (per pipeline: totals and every day's state, stored and expected records, run) and run note.
* `streamforge__sweeper` (daily) — creates Airflow backfills for the missing, partial and failed
  days and months (orchestration/sweeper.py) and reports them in its log, XCom and run note.
  Params: `budget` (runs per sweep), `dry_run`.

Both talk to Airflow through its REST API with the connection `streamforge_airflow_api` (the
Task SDK has no access to other DAGs' runs or to backfills) and read ArangoDB through each
pipeline's own connection. Parsing reads the catalog only.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseHook, Param, get_parsing_context, task

from streamforge.orchestration import task_ids
from streamforge.orchestration.airflow_api import AIRFLOW_API_CONN_ID, AirflowApi
from streamforge.orchestration.catalog import load_catalog
from streamforge.orchestration.connections import arango_database, arango_url
from streamforge.orchestration.coverage import PipelineCoverage, measure_catalog, summary_lines
from streamforge.orchestration.run_note import set_run_note
from streamforge.orchestration.sweeper import sweep
from streamforge.orchestration.verify import open_database

log = logging.getLogger(__name__)

COVERAGE_DAG_ID = "streamforge__coverage"
SWEEPER_DAG_ID = "streamforge__sweeper"
DEFAULT_BUDGET = 31


def _db_for(conn_id: str) -> Any:
    conn = BaseHook.get_connection(conn_id)
    return open_database(arango_url(conn), arango_database(conn), conn.login, conn.password)


def _measure(default_catalog: str | Path, api: AirflowApi) -> list[PipelineCoverage]:
    dbs: dict[str, Any] = {}

    def db_for(conn_id: str) -> Any:
        if conn_id not in dbs:
            dbs[conn_id] = _db_for(conn_id)
        return dbs[conn_id]

    return measure_catalog(load_catalog(default_catalog).dags, db_for, api.dag_runs)


def coverage_xcom(coverages: list[PipelineCoverage]) -> dict[str, Any]:
    """The summary as XCom: per DAG id, totals and one entry per day."""
    return {
        cov.dag_id: {
            "totals": cov.totals(),
            "days": {
                str(d.day): {
                    "state": d.state.value,
                    "stored": d.stored,
                    "expected": d.expected,
                    "run_id": d.run.run_id if d.run else None,
                    "run_state": d.run.state if d.run else None,
                }
                for d in cov.days
            },
        }
        for cov in coverages
    }


def _note(context: Any, text: str) -> None:
    run = context["dag_run"]
    set_run_note(run.dag_id, run.run_id, text, AIRFLOW_API_CONN_ID)


def build_coverage_dag(default_catalog: str | Path) -> DAG:
    with DAG(
        dag_id=COVERAGE_DAG_ID,
        dag_display_name="StreamForge coverage",
        description="Per pipeline and day: expected and stored records, last run, state",
        schedule="30 0 * * *",
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["streamforge", "maintenance"],
        doc_md=__doc__,
        default_args={"owner": "streamforge", "retries": 1, "retry_delay": timedelta(minutes=2)},
    ) as dag:

        @task(task_id=task_ids.SUMMARIZE_COVERAGE)
        def summarize_coverage(**context: Any) -> dict[str, Any]:
            with AirflowApi.from_connection() as api:
                coverages = _measure(default_catalog, api)
            lines = summary_lines(coverages)
            for line in lines:
                log.info("%s", line)
            _note(context, "\n\n".join(lines) or "no pipeline declares history")
            return coverage_xcom(coverages)

        summarize_coverage()
    return dag


def build_sweeper_dag(default_catalog: str | Path) -> DAG:
    with DAG(
        dag_id=SWEEPER_DAG_ID,
        dag_display_name="StreamForge sweeper",
        description="Backfills the missing, partial and failed days and months of declared history",
        schedule="0 1 * * *",
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["streamforge", "maintenance"],
        doc_md=__doc__,
        params={
            "budget": Param(
                DEFAULT_BUDGET,
                type="integer",
                minimum=1,
                maximum=10_000,
                description="at most this many runs are scheduled per sweep",
            ),
            "dry_run": Param(False, type="boolean", description="only report what would be scheduled"),
        },
        default_args={"owner": "streamforge", "retries": 0},
    ) as dag:

        @task(task_id=task_ids.SWEEP)
        def sweep_history(**context: Any) -> dict[str, Any]:
            params = context["params"]
            with AirflowApi.from_connection() as api:
                coverages = _measure(default_catalog, api)
                report = sweep(api, coverages, int(params["budget"]), dry_run=bool(params["dry_run"]))
            for line in report.lines():
                log.info("%s", line)
            _note(context, ("**dry run**\n\n" if params["dry_run"] else "") + report.note())
            return report.model_dump(mode="json")

        sweep_history()
    return dag


def register_maintenance_dags(namespace: MutableMapping[str, Any], default_catalog: str | Path) -> list[str]:
    """Build the two DAGs into a DAG file's globals (only the one a task needs, if known)."""
    wanted = get_parsing_context().dag_id
    built = []
    for dag_id, build in ((COVERAGE_DAG_ID, build_coverage_dag), (SWEEPER_DAG_ID, build_sweeper_dag)):
        if wanted and wanted != dag_id:
            continue
        namespace[dag_id] = build(default_catalog)
        built.append(dag_id)
    return built
