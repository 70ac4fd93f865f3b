"""One plan, one set of workers: the check that keeps a partly cleared run from mixing attempts.

`plan` is a setup task, so clearing any task of a run re-plans (new h6, queue, topic). But
Airflow clears only the selected task, its downstream and its setups - not its siblings: after
"clear run_sink (+downstream)" the loader and the sensor of the earlier attempt would stay done,
and the new sink would wait forever for data nobody loads. So each work task claims the plan's
queue_id (XCom `queue_id`) when it starts, and refuses to start if a sibling already finished
for another queue_id. The fix it names: clear the whole run, or `plan` with downstream.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from streamforge.orchestration.task_ids import WORK_TASKS

QUEUE_XCOM_KEY = "queue_id"
_DONE = {"success", "failed", "skipped", "upstream_failed", "removed"}


def claim_queue(context: Any, queue_id: str) -> None:
    ti = context["ti"]
    siblings = [t for t in WORK_TASKS if t != ti.task_id]
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=siblings, run_ids=[ti.run_id]).get(ti.run_id, {})
    stale = []
    for task_id in siblings:
        other = ti.xcom_pull(task_ids=task_id, key=QUEUE_XCOM_KEY)
        state = str(states.get(task_id) or "")
        if other and other != queue_id and state in _DONE:
            stale.append(f"{task_id} ({state} for {other})")
    if stale:
        raise AirflowFailException(
            f"{ti.task_id} would run for {queue_id} alone: {', '.join(stale)} ran for an earlier attempt and "
            "was not cleared. Clear the whole DAG run, or `plan` with downstream, so all workers re-run together"
        )
    ti.xcom_push(key=QUEUE_XCOM_KEY, value=queue_id)
