"""Alerts: one message per failed run, and one per run that outlives its deadline.

The watcher task (the one task that fails whenever the run failed) pushes an `Alert` as XCom
`alert` and fails; its on_failure_callback is the list of notifiers the catalog chose:

* `slack_webhook`: the Slack provider's SlackWebhookNotifier (conn: Slack Incoming Webhook);
* `webhook`: JsonWebhookNotifier, an HTTP POST of the alert as JSON to the URL of an HTTP
  connection (host, port, schema = http|https, extra.endpoint; password -> Bearer token).

The alert names the task whose failure made the run fail (root_cause.py), not the first
task Airflow happened to see failing, and links to that task's log. Every task records its
error text (`record_error`), so the alert can quote it.

The deadline alert (airflow.sdk DeadlineAlert) calls `deadline_missed` in the triggerer, which
reads the run's queue id (the `plan` XCom) and current task states and sends the same kinds of
message asynchronously.

A target whose Airflow connection does not exist is skipped with one warning: alerting never
fails a run, nor hides why it failed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
from airflow.sdk import BaseHook, BaseNotifier, Connection, conf
from airflow.sdk.exceptions import AirflowNotFoundException
from pydantic import BaseModel, ConfigDict, Field

from streamforge.orchestration.catalog import AlertTarget, SlackWebhookTarget, WebhookTarget
from streamforge.orchestration.task_ids import ORDER, PLAN

log = logging.getLogger(__name__)

ALERT_XCOM_KEY = "alert"
ERROR_XCOM_KEY = "error"
WEBHOOK_TIMEOUT = 10.0
_MAX_ERROR = 2000


class Alert(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "run_failed"  # run_failed | deadline_missed
    dag_id: str
    run_id: str
    task: str | None = None  # the task whose failure made the run fail (its log is `log_url`)
    cause: str | None = None  # why that task is the one named
    failed_tasks: list[str] = Field(default_factory=list)  # failed when the alert was sent
    task_states: dict[str, str | None] = Field(default_factory=dict)  # when the alert was sent
    queue_id: str | None = None
    error: str | None = None
    log_url: str | None = None

    @property
    def text(self) -> str:
        failed = self.kind == "run_failed"
        lines = [
            f"{'StreamForge run FAILED' if failed else 'StreamForge run past its deadline'}: {self.dag_id}",
            f"run: {self.run_id}",
        ]
        if failed or self.task:
            lines.append(f"failed task: {self.task or '-'}" + (f" ({self.cause})" if self.cause else ""))
        lines += [f"queue_id: {self.queue_id or '-'}", f"error: {self.error or '-'}"]
        if self.log_url:
            lines.append(f"log: {self.log_url}")
        if self.task_states:
            lines.append(f"task states: {format_states(self.task_states)}")
        return "\n".join(lines)

    def payload(self) -> dict[str, Any]:
        return {"event": f"streamforge.{self.kind}", **self.model_dump(mode="json"), "text": self.text}


def format_states(states: Mapping[str, str | None]) -> str:
    """`plan=success, create_topic=success, …` in run order (tasks without a state yet: `none`)."""
    ordered = sorted(states, key=lambda t: (ORDER.index(t) if t in ORDER else len(ORDER), t))
    return ", ".join(f"{task}={states[task] or 'none'}" for task in ordered)


def task_log_url(dag_id: str, run_id: str, task_id: str) -> str:
    base = conf.get("api", "base_url", fallback="http://localhost:8080/") or "http://localhost:8080/"
    return f"{base.rstrip('/')}/dags/{dag_id}/runs/{quote(run_id)}/tasks/{task_id}"


def short(text: object) -> str:
    value = str(text).strip()
    return value if len(value) <= _MAX_ERROR else value[: _MAX_ERROR - 1] + "…"


def record_error(context: Mapping[str, Any]) -> None:
    """on_failure_callback of every task: keep its error text for the run's alert."""
    exception = context.get("exception")
    if exception is None:
        return
    try:
        context["ti"].xcom_push(key=ERROR_XCOM_KEY, value=short(exception))
    except Exception:  # a callback must never mask the task's own failure
        log.warning("could not record the error of %s", context["ti"].task_id, exc_info=True)


def run_url(dag_id: str, run_id: str) -> str:
    return task_log_url(dag_id, run_id, PLAN).rsplit("/tasks/", 1)[0]


def target_connection(conn_id: str) -> Connection | None:
    """The target's connection, or None (and one warning) when it is not defined."""
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.warning("alert target skipped: Airflow connection %r is not defined", conn_id)
        return None


def alert_from_context(context: Mapping[str, Any]) -> Alert:
    """The watcher's alert (XCom), or one built from whatever task is failing."""
    ti = context["ti"]
    pushed = ti.xcom_pull(task_ids=ti.task_id, key=ALERT_XCOM_KEY)
    if pushed:
        return Alert.model_validate(pushed)
    return Alert(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task=ti.task_id,
        failed_tasks=[ti.task_id],
        error=short(context.get("exception") or "unknown error"),
        log_url=task_log_url(ti.dag_id, ti.run_id, ti.task_id),
    )


# --------------------------------------------------------------------------------------------- webhook


def webhook_url(host: str | None, port: int | None, schema: str | None, extra: Mapping[str, Any]) -> str:
    if not host:
        raise ValueError("the webhook connection has no host")
    if "://" in host:
        base = host.rstrip("/")
    else:
        base = f"{schema or 'https'}://{host}" + (f":{port}" if port else "")
    endpoint = str(extra.get("endpoint") or "").lstrip("/")
    return f"{base}/{endpoint}" if endpoint else base


def _headers(password: str | None, extra: Mapping[str, Any]) -> dict[str, str]:
    headers = {"Content-Type": "application/json", **{str(k): str(v) for k, v in (extra.get("headers") or {}).items()}}
    if password:
        headers["Authorization"] = f"Bearer {password}"
    return headers


class JsonWebhookNotifier(BaseNotifier):
    """POST the run's alert as JSON to the URL of an HTTP connection."""

    template_fields = ("conn_id",)

    def __init__(self, *, conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    def notify(self, context: Any) -> None:
        conn = target_connection(self.conn_id)
        if conn is None:
            return
        alert = alert_from_context(context)
        extra = conn.extra_dejson
        url = webhook_url(conn.host, conn.port, conn.schema, extra)
        response = httpx.post(
            url, json=alert.payload(), headers=_headers(conn.password, extra), timeout=WEBHOOK_TIMEOUT
        )
        response.raise_for_status()
        self.log.info("alert for %s sent to %s (%s)", alert.run_id, self.conn_id, response.status_code)


class StreamforgeSlackNotifier(SlackWebhookNotifier):
    """The provider's Slack webhook notifier, with the run's alert as text."""

    def __init__(self, *, slack_webhook_conn_id: str, **kwargs: Any) -> None:
        super().__init__(slack_webhook_conn_id=slack_webhook_conn_id, text="", **kwargs)

    def notify(self, context: Any) -> None:
        if target_connection(self.slack_webhook_conn_id) is None:
            return
        self.text = alert_from_context(context).text
        super().notify(context)


def notifiers(targets: Sequence[AlertTarget]) -> list[BaseNotifier]:
    result: list[BaseNotifier] = []
    for target in targets:
        if isinstance(target, SlackWebhookTarget):
            result.append(StreamforgeSlackNotifier(slack_webhook_conn_id=target.conn_id))
        elif isinstance(target, WebhookTarget):
            result.append(JsonWebhookNotifier(conn_id=target.conn_id))
    return result


# --------------------------------------------------------------------------------------------- deadline


async def deadline_missed(context: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
    """AsyncCallback of the DAG's DeadlineAlert; runs in the triggerer."""
    context = context or {}
    dag_run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    dag_id = str(dag_run.get("dag_id") or kwargs.get("dag_id") or "?")
    run_id = str(dag_run.get("dag_run_id") or dag_run.get("run_id") or "?")
    plan, states = await _run_state(dag_id, run_id)
    failed = sorted(t for t, state in states.items() if state == "failed")
    alert = Alert(
        kind="deadline_missed",
        dag_id=dag_id,
        run_id=run_id,
        failed_tasks=failed,
        task_states=states,
        queue_id=(plan or {}).get("queue_id"),
        error=f"still running at its deadline {deadline.get('deadline_time')} "
        f"({kwargs.get('minutes')} min after it was queued)",
        log_url=run_url(dag_id, run_id),
    )
    for target in kwargs.get("targets") or []:
        try:
            await _send_async(target, alert)
        except Exception:
            log.exception("deadline alert for %s via %s failed", run_id, target)


async def _run_state(dag_id: str, run_id: str) -> tuple[dict[str, Any] | None, dict[str, str | None]]:
    """The run's `plan` XCom and its task states, through the triggerer's supervisor."""
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import GetTaskStates, TaskStatesResult
    from airflow.sdk.execution_time.xcom import XCom

    plan: dict[str, Any] | None = None
    states: dict[str, str | None] = {}
    try:  # the alert goes out without what cannot be read
        plan = await XCom.aget_one(key="return_value", dag_id=dag_id, task_id=PLAN, run_id=run_id)
        reply = await task_runner.SUPERVISOR_COMMS.asend(GetTaskStates(dag_id=dag_id, run_ids=[run_id]))
        if isinstance(reply, TaskStatesResult):
            states = dict(reply.task_states.get(run_id, {}))
    except Exception as exc:
        log.warning("deadline alert for %s: cannot read the run's plan or task states: %r", run_id, exc)
    return plan, states


async def _target_connection(conn_id: str) -> Connection | None:
    try:
        return await BaseHook.aget_connection(conn_id)
    except AirflowNotFoundException:
        log.warning("alert target skipped: Airflow connection %r is not defined", conn_id)
        return None


async def _send_async(target: Mapping[str, Any], alert: Alert) -> None:
    conn = await _target_connection(target["conn_id"])
    if conn is None:
        return
    if target.get("kind") == "webhook":
        extra = conn.extra_dejson
        url = webhook_url(conn.host, conn.port, conn.schema, extra)
        async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT) as client:
            response = await client.post(url, json=alert.payload(), headers=_headers(conn.password, extra))
            response.raise_for_status()
    elif target.get("kind") == "slack_webhook":
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        await SlackWebhookHook(slack_webhook_conn_id=target["conn_id"]).async_send(text=alert.text)
