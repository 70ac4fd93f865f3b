"""Which task made a run fail: the one its alert names (docs/ARCHITECTURE.md §6).

The watcher starts on the first failure Airflow sees, which is often only an observer:
`await_outcome` fails as soon as it reads a worker's `error` event, seconds before the worker's
own task ends, and a worker that obeyed the DAG's `stop` fails because something else did. So
the cause is taken from what the run knows, not from which task turned red first.
"""

from __future__ import annotations

from collections.abc import Mapping

from streamforge.orchestration.outcome import Outcome
from streamforge.orchestration.task_ids import ORDER, SETUP_TASKS, TEARDOWN_TASKS, worker_task_id

# How a runner says its worker ended because it was told to stop (runners/local.py): a consequence.
INTERRUPTED = "was interrupted"


def run_order(task_id: str) -> int:
    return ORDER.index(task_id) if task_id in ORDER else len(ORDER)


def failed_tasks(states: Mapping[str, str | None]) -> list[str]:
    """The failed ones, in run order."""
    return sorted((t for t, state in states.items() if state == "failed"), key=run_order)


def root_cause(
    failed: list[str], errors: Mapping[str, object], outcome: Outcome | None, producers: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """The task whose failure made the run fail, and why it is that one.

    In this order: a failed setup (nothing ran after it); the worker whose event decided the
    outcome (by its producer id, unique per role); else the first failed task in run order that
    was not merely told to stop.

    :param failed: the run's failed tasks now
    :param errors: task id -> the error text it recorded (alerts.record_error)
    :param outcome: the sensor's verdict, if it reached one
    :param producers: role -> the producer id the plan gave that worker
    """
    for setup in SETUP_TASKS:
        if setup in failed:
            return setup, "setup task"
    if outcome is not None and not outcome.success and outcome.producer:
        role = {producer: role for role, producer in producers.items()}.get(outcome.producer)
        if role is not None:
            return worker_task_id(role), f"its {role} reported `{outcome.reason.value}` ({outcome.producer})"
    ordered = sorted(failed, key=run_order)
    causes = [t for t in ordered if INTERRUPTED not in str(errors.get(t) or "")]
    first = (causes or ordered or [None])[0]
    if first is None:
        return None, None
    return first, "teardown task" if first in TEARDOWN_TASKS else None
