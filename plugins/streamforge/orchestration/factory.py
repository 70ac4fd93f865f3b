"""The DAG factory: one DAG per catalog entry (ARCHITECTURE §1, §6).

    plan (setup) ─► create_topic (setup) ─► run_loader ─────┐
                                         ├► run_sink ───────┼─► verify (Asset event, run note)
                                         └► await_outcome ──┤
                                 any of the three failed ─► send_stop ─► delete_topic (teardown)
    every task ─► watcher (fails the run and sends the alert whenever anything failed)

Clearing / re-running: `plan` is a setup task, so clearing any task inside the topic's scope (a
worker, the sensor, send_stop) clears `plan` and `create_topic` with it (Airflow clears the relevant
setups and teardowns). `plan` then runs with a new try_number, hence a new h6: a new queue_id,
topic, producer ids and QUEUE_CREATED_AT, so the events of the earlier attempt cannot be taken
for the new one. Airflow does not clear a task's siblings, though: a worker or the sensor that
would run for the new plan while a sibling stays done from the old one refuses to start
(guards.claim_queue) and says to clear the run, or `plan` with downstream. `verify` reads only
ArangoDB and the plan's XCom, so it sits outside that scope: clearing it re-checks the same
attempt's data.

Only the DAG asked for is built when a task starts (get_parsing_context), and parsing does
no I/O besides reading the catalog once per process.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import (
    DAG,
    AsyncCallback,
    CronDataIntervalTimetable,
    DeadlineAlert,
    DeadlineReference,
    TriggerRule,
    get_parsing_context,
    task,
)
from airflow.sdk.exceptions import AirflowSkipException

from streamforge.orchestration import alerts, task_ids, tasks
from streamforge.orchestration.assets import data_asset
from streamforge.orchestration.catalog import DagSpec, Role, SensorMode, load_catalog
from streamforge.orchestration.docs import TASK_DOCS, display_name, doc_md
from streamforge.orchestration.kafka_ops import create_data_topic, delete_data_topic
from streamforge.orchestration.monthly import is_monthly
from streamforge.orchestration.params import dag_params
from streamforge.orchestration.plan import RunPlan
from streamforge.orchestration.runners import worker_task
from streamforge.orchestration.sensor import QueueOutcomeSensor
from streamforge.orchestration.spec import worker_spec


def build_dag(spec: DagSpec) -> DAG:
    s = spec.settings
    kafka_id, arango_id = s.connections.kafka, s.connections.arango
    deadline = None
    if s.alerts.run_deadline_minutes:
        deadline = DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(minutes=s.alerts.run_deadline_minutes),
            callback=AsyncCallback(
                alerts.deadline_missed,
                kwargs={
                    "targets": [t.model_dump(mode="json") for t in s.alerts.targets],
                    "dag_id": spec.dag_id,
                    "minutes": s.alerts.run_deadline_minutes,
                },
            ),
        )

    with DAG(
        dag_id=spec.dag_id,
        dag_display_name=display_name(spec) + (" · monthly" if is_monthly(spec) else ""),
        description=f"Binance {spec.symbol} {spec.data_type} -> Kafka -> ArangoDB ({s.runner.value})"
        + (", one calendar month per run" if is_monthly(spec) else ""),
        schedule=CronDataIntervalTimetable(s.schedule, timezone="UTC") if s.schedule else None,
        start_date=datetime.combine(s.start_date, datetime.min.time(), UTC),
        catchup=False,
        max_active_runs=s.max_active_runs,
        params=dag_params(spec),
        tags=sorted({*s.tags, spec.symbol.lower(), spec.data_type, f"pipeline:{spec.pipeline}", s.runner.value}),
        doc_md=doc_md(spec),
        deadline=deadline,
        default_args={
            "owner": s.owner,
            "retries": s.retries,
            "retry_delay": timedelta(minutes=s.retry_delay_minutes),
            "on_failure_callback": [alerts.record_error],
        },
    ) as dag:

        @task(task_id=task_ids.PLAN, retries=0, multiple_outputs=False)
        def plan(**context: Any) -> dict[str, Any]:
            return tasks.run_plan(spec, context)

        @task(task_id=task_ids.CREATE_TOPIC)
        def create_topic(plan: dict[str, Any]) -> None:
            run_plan = RunPlan.from_xcom(plan)
            if run_plan.skip_reason:  # listing boundary: no topic, and no worker (they are skipped with it)
                raise AirflowSkipException(f"nothing to load: {run_plan.skip_reason}")
            create_data_topic(kafka_id, run_plan)

        # NONE_FAILED: a window skipped at the listing boundary is verified (0 records) and emits
        # its Asset event too; any failure upstream still stops verify. The plan is pulled, not
        # passed: a task right after a setup task must be ALL_SUCCESS.
        @task(
            task_id=task_ids.VERIFY,
            multiple_outputs=False,
            trigger_rule=TriggerRule.NONE_FAILED,
            outlets=[data_asset(spec.symbol, spec.data_type)],
        )
        def verify(outcome: dict[str, Any] | None, **context: Any) -> dict[str, Any]:
            return tasks.run_verify(arango_id, context["ti"].xcom_pull(task_ids=task_ids.PLAN), outcome, context)

        @task(task_id=task_ids.SEND_STOP, trigger_rule=TriggerRule.ONE_FAILED)
        def send_stop(**context: Any) -> None:
            tasks.run_send_stop(kafka_id, context)

        @task(task_id=task_ids.DELETE_TOPIC)
        def delete_topic(plan: dict[str, Any]) -> None:
            delete_data_topic(kafka_id, RunPlan.from_xcom(plan))

        @task(
            task_id=task_ids.WATCHER,
            trigger_rule=TriggerRule.ONE_FAILED,
            retries=0,
            on_failure_callback=alerts.notifiers(s.alerts.targets),
        )
        def watcher(**context: Any) -> None:
            tasks.run_watcher(context)

        planned = plan()
        planned.as_setup()
        created = create_topic(planned)
        created.as_setup()
        loader = worker_task(spec, worker_spec(spec, Role.LOADER))
        sink = worker_task(spec, worker_spec(spec, Role.SINK))
        outcome = QueueOutcomeSensor(
            task_id=task_ids.AWAIT_OUTCOME,
            plan=planned,
            kafka_config_id=kafka_id,
            deferrable=s.effective_sensor_mode is SensorMode.DEFERRABLE,
            mode=s.waiting_mode,
            poke_interval=s.sensor.poke_interval_seconds,
            max_timeout_minutes=s.run.max_timeout_minutes,
            retries=0,
        )
        workers = [loader, sink, outcome]
        created >> workers
        verified = verify(outcome.output)
        workers >> verified
        stopped = send_stop()
        workers >> stopped
        deleted = delete_topic(planned)
        # verify reads ArangoDB only, so it stays outside the topic's setup scope: a window skipped
        # at the listing boundary (create_topic skipped, workers with it) is still verified.
        stopped >> deleted
        deleted.as_teardown(setups=created)
        # Not from the setups directly (Airflow wants ALL_SUCCESS right after a setup); a failed
        # setup still reaches the watcher as upstream_failed, which ONE_FAILED counts.
        [*workers, verified, stopped, deleted] >> watcher()
        for each in dag.tasks:
            each.doc_md = TASK_DOCS.get(each.task_id)
    return dag


def register_dags(namespace: MutableMapping[str, Any], default_catalog: str | Path) -> list[str]:
    """Build the catalog's DAGs into a DAG file's globals; only the one a task needs, if known."""
    wanted = get_parsing_context().dag_id
    built = []
    for spec in load_catalog(default_catalog).dags:
        if wanted and wanted != spec.dag_id:
            continue
        namespace[spec.dag_id] = build_dag(spec)
        built.append(spec.dag_id)
    return built
