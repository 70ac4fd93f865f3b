"""Run one DAG with `dag.test()` in this process and write what happened as JSON.

    python -m tests.dags.dagtest_runner DAG_ID LOGICAL_DATE [--conf JSON] --out FILE
        [--clear TASK_ID --rerun-catalog FILE]

With --clear, the finished run is then cleared the way the UI / REST API clear a task with
"downstream" (find_relevant_relatives + dag.clear + clear_task_instances), and executed again
in place, with the same in-process task runner dag.test uses, after switching the catalog
(e.g. the failing worker fixed). The JSON then holds both attempts: "first" and the final one.

The caller sets the environment (AIRFLOW_HOME with a migrated DB, DAGS_FOLDER, catalog,
connections) and kills this process if it outlives its budget: dag.test ignores timeouts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _summary(dag_id: str, run_id: str) -> dict[str, Any]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        states = {ti.task_id: (str(ti.state) if ti.state else None) for ti in tis}
        tries = {ti.task_id: ti.try_number for ti in tis}
        rows = session.scalars(select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)).all()
        xcoms: dict[str, Any] = {}
        for row in rows:
            xcoms[f"{row.task_id}.{row.key}"] = XComModel.deserialize_value(row)
    return {"states": states, "tries": tries, "xcoms": xcoms}


def _aware(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def clear_and_resume(dag_id: str, run_id: str, task_id: str) -> list[str]:
    """Clear `task_id` with downstream (and, as Airflow does, its relevant setups) and run again."""
    import time

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import clear_task_instances, find_relevant_relatives
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    from streamforge.orchestration.catalog import load_catalog

    load_catalog.cache_clear()
    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[dag_id]
    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    with create_session() as session:
        dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        ids = {
            task_id,
            *find_relevant_relatives(
                [task_id], [], direction="downstream", dag=scheduler_dag, run_id=run_id, session=session
            ),
        }
        tis = scheduler_dag.clear(dry_run=True, task_ids=sorted(ids), run_id=run_id, session=session)
        clear_task_instances(tis, session, DagRunState.QUEUED)
        cleared = sorted(ti.task_id for ti in tis)
        dag_run.dag = scheduler_dag
        dag_run.state = DagRunState.RUNNING
        session.commit()
        while dag_run.state == DagRunState.RUNNING:
            session.expire_all()
            schedulable, _ = dag_run.update_state(session=session)
            for ti in schedulable:
                if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                    ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
            session.commit()
            scheduled = [
                t for t in dag_run.get_task_instances(session=session) if t.state == TaskInstanceState.SCHEDULED
            ]
            if not scheduled:
                time.sleep(1)
            for ti in scheduled:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
    return cleared


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dag_id")
    parser.add_argument("logical_date", type=_aware)
    parser.add_argument("--conf", type=json.loads, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--clear", default=None)
    parser.add_argument("--rerun-catalog", default=None)
    args = parser.parse_args(argv)

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if args.dag_id not in bag.dags:
        args.out.write_text(json.dumps({"error": f"{args.dag_id} not parsed", "import_errors": bag.import_errors}))
        return 2
    dag = bag.dags[args.dag_id]
    dag_run = dag.test(logical_date=args.logical_date, run_conf=args.conf)
    result = {"dag_id": args.dag_id, "run_id": dag_run.run_id, "state": str(dag_run.state.value)}
    result |= _summary(args.dag_id, dag_run.run_id)
    if args.clear:
        if args.rerun_catalog:
            os.environ["STREAMFORGE_CATALOG"] = args.rerun_catalog
        first = result
        cleared = clear_and_resume(args.dag_id, dag_run.run_id, args.clear)
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            state = session.scalar(select(DagRun.state).where(DagRun.run_id == dag_run.run_id))
        result = {
            "dag_id": args.dag_id,
            "run_id": dag_run.run_id,
            "state": str(state),
            "cleared": cleared,
            "first": first,
        } | _summary(args.dag_id, dag_run.run_id)
    args.out.write_text(json.dumps(result, default=str, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
