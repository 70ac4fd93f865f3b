"""The bodies of the DAG's Python tasks (the factory only wires them).

Each takes what it needs explicitly (connection ids, the plan XCom, the task context), so the
rules are readable and testable without building a DAG.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from streamforge.contracts.gaps import Gap, Repair
from streamforge.orchestration import alerts, listing
from streamforge.orchestration.assets import LoadEvent, data_asset
from streamforge.orchestration.catalog import DagSpec, Role
from streamforge.orchestration.connections import arango_database, arango_url
from streamforge.orchestration.gap_ledger import record_gaps
from streamforge.orchestration.kafka_ops import send_stop_command
from streamforge.orchestration.outcome import Outcome, Reason
from streamforge.orchestration.plan import PlanError, RunPlan, make_plan, with_listing
from streamforge.orchestration.root_cause import failed_tasks, root_cause
from streamforge.orchestration.run_note import note_text, set_run_note
from streamforge.orchestration.sensor import OUTCOME_XCOM_KEY
from streamforge.orchestration.task_ids import AWAIT_OUTCOME, PLAN, WORK_TASKS
from streamforge.orchestration.verify import Report, check, open_database, summarize

log = logging.getLogger(__name__)

BINANCE_API_URL_ENV = "STREAMFORGE_BINANCE_API_URL"
BINANCE_ARCHIVE_URL_ENV = "STREAMFORGE_BINANCE_ARCHIVE_URL"


def run_plan(spec: DagSpec, context: Any) -> dict[str, Any]:
    """`plan`: the attempt's identity from the run, plan's try number and the params."""
    ti, dag_run = context["ti"], context["dag_run"]
    try:
        plan = make_plan(
            spec,
            run_id=dag_run.run_id,
            attempt=ti.try_number,
            logical_date=dag_run.logical_date,
            run_after=dag_run.run_after,
            params=dict(context["params"]),
            now=datetime.now(UTC),
            # The demo and the tests point the loader at a local Binance replay server.
            binance_api_url=os.environ.get(BINANCE_API_URL_ENV) or None,
            binance_archive_url=os.environ.get(BINANCE_ARCHIVE_URL_ENV) or None,
        )
    except PlanError as exc:
        raise AirflowFailException(str(exc)) from None
    plan = apply_listing(spec, plan)
    log.info(
        "plan: queue_id=%s window=%s topic=%s collection=%s attempt=%d deadline=%s",
        plan.queue_id,
        plan.time_range,
        plan.data_topic,
        plan.collection,
        plan.attempt,
        plan.deadline.isoformat(),
    )
    return plan.xcom()


def apply_listing(spec: DagSpec, plan: RunPlan) -> RunPlan:
    """The listing boundary (orchestration/listing.py); without it the loader still classifies the holes."""
    try:
        db = _arango(spec.settings.connections.arango)
        info = listing.cached(db, plan.env[Role.LOADER]["BINANCE_API_URL"], plan.symbol, plan.data_type)
    except Exception as exc:  # the exchange or ArangoDB unreachable: no boundary, nothing lost
        log.warning("listing boundary unknown, loading the whole window: %s", exc)
        return plan
    bound = listing.boundary(info, int(plan.window_start.timestamp() * 1000), int(plan.window_end.timestamp() * 1000))
    planned = with_listing(plan, bound.start_ms, bound.skip_reason, bound.note)
    if planned.skip_reason:
        log.info("nothing to load: %s", planned.skip_reason)
    elif planned.listing_note:
        log.info("%s: window now %s", planned.listing_note, planned.time_range)
    return planned


def _arango(conn_id: str) -> Any:
    conn = BaseHook.get_connection(conn_id)
    return open_database(arango_url(conn), arango_database(conn), conn.login, conn.password)


def run_verify(
    arango_conn_id: str, plan: dict[str, Any], outcome: dict[str, Any] | None, context: Any
) -> dict[str, Any]:
    """`verify`: the collection holds exactly the window's records minus recorded exchange gaps.

    Then records the gaps in the ledger, writes the run note and fills the Asset event's extra.
    """
    run_plan_ = RunPlan.from_xcom(plan)
    db = _arango(arango_conn_id)
    if run_plan_.skip_reason:
        report = Report(
            collection=run_plan_.collection,
            window=run_plan_.time_range,
            count=0,
            first=None,
            last=None,
            expected_count=0,
            problems=[],
            reason=run_plan_.skip_reason,
        )
        loader_records: int | None = 0
    else:
        if not outcome:
            raise AirflowFailException("no outcome of the workers to verify")
        result = Outcome.model_validate(outcome)
        gaps = [Gap.model_validate(g) for g in result.gaps]
        repairs = [Repair.model_validate(r) for r in result.repairs]
        report = check(run_plan_, summarize(db, run_plan_), result.loader_records, gaps, repairs)
        loader_records = result.loader_records
    log.info("%s", report.line())
    if not report.ok:
        raise AirflowFailException(report.line())
    ti = context["ti"]
    record_gaps(db, report.gaps, dag_id=ti.dag_id, run_id=ti.run_id, queue_id=run_plan_.queue_id)
    note = note_text(report.gaps, report.repairs, report.reason or run_plan_.listing_note)
    if note:
        set_run_note(ti.dag_id, ti.run_id, note)
    event = LoadEvent(
        start=run_plan_.window_start.isoformat().replace("+00:00", "Z"),
        end=run_plan_.window_end.isoformat().replace("+00:00", "Z"),
        records=loader_records or 0,
        gaps=[g.model_dump(mode="json", exclude_none=True) for g in report.gaps],
        repairs=[r.model_dump(mode="json") for r in report.repairs],
        collections=[] if run_plan_.skip_reason else [part.collection for part in run_plan_.parts],
        source=run_plan_.source.value,
        reason=report.reason,
    )
    context["outlet_events"][data_asset(run_plan_.symbol, run_plan_.data_type)].extra = event.model_dump(mode="json")
    return report.model_copy(update={"note": note}).model_dump(mode="json")


def task_states(context: Any) -> dict[str, str | None]:
    """The states of the run's other tasks, now."""
    ti = context["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    return {task_id: state for task_id, state in states.items() if task_id != ti.task_id}


def run_send_stop(kafka_conn_id: str, context: Any) -> None:
    """`send_stop`: publish `stop` for the queue so surviving workers end."""
    ti = context["ti"]
    value = ti.xcom_pull(task_ids=PLAN)
    if not value:
        raise AirflowSkipException("no plan, so no worker to stop")
    outcome = ti.xcom_pull(task_ids=AWAIT_OUTCOME, key=OUTCOME_XCOM_KEY)
    failed = [t for t in failed_tasks(task_states(context)) if t in WORK_TASKS]
    reason = (outcome or {}).get("message") or f"task(s) {', '.join(failed) or '?'} failed"
    send_stop_command(kafka_conn_id, RunPlan.from_xcom(value), reason=alerts.short(reason))


def run_watcher(context: Any) -> None:
    """`watcher`: runs on the first failure; records the alert naming the root cause (root_cause.py), fails the run."""
    ti = context["ti"]
    states = task_states(context)
    failed = failed_tasks(states)
    value = ti.xcom_pull(task_ids=PLAN) or {}
    raw_outcome = ti.xcom_pull(task_ids=AWAIT_OUTCOME, key=OUTCOME_XCOM_KEY)
    outcome = Outcome.model_validate(raw_outcome) if raw_outcome else None
    errors = {t: ti.xcom_pull(task_ids=t, key=alerts.ERROR_XCOM_KEY) for t in failed}
    task, cause = root_cause(failed, errors, outcome, value.get("producers") or {})
    # The sensor's verdict quotes the worker's own error; a `stopped` verdict is only a consequence.
    if outcome is not None and not outcome.success and outcome.reason is not Reason.STOPPED:
        error = outcome.message
    else:
        error = errors.get(task) if task else None
    alert = alerts.Alert(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task=task,
        cause=cause,
        failed_tasks=failed,
        task_states=states,
        queue_id=value.get("queue_id"),
        error=alerts.short(error or "see the task logs"),
        log_url=alerts.task_log_url(ti.dag_id, ti.run_id, task or ti.task_id),
    )
    ti.xcom_push(key=alerts.ALERT_XCOM_KEY, value=alert.model_dump(mode="json"))
    raise AirflowFailException(f"run failed: {task or 'a task'} failed: {alert.error}")
