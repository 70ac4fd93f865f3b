"""Task ids of a StreamForge DAG: the one place they are spelled (docs/ARCHITECTURE.md §1)."""

from __future__ import annotations

from typing import Final

PLAN: Final = "plan"
CREATE_TOPIC: Final = "create_topic"
RUN_LOADER: Final = "run_loader"
RUN_SINK: Final = "run_sink"
AWAIT_OUTCOME: Final = "await_outcome"
VERIFY: Final = "verify"
SEND_STOP: Final = "send_stop"
DELETE_TOPIC: Final = "delete_topic"
WATCHER: Final = "watcher"

# The tasks that work on one queue: they must all belong to the same plan (guards.claim_queue).
WORK_TASKS: Final = (RUN_LOADER, RUN_SINK, AWAIT_OUTCOME)
SETUP_TASKS: Final = (PLAN, CREATE_TOPIC)
TEARDOWN_TASKS: Final = (DELETE_TOPIC,)
# Run order, used to name where a failure most likely started.
ORDER: Final = (PLAN, CREATE_TOPIC, RUN_LOADER, RUN_SINK, AWAIT_OUTCOME, VERIFY, SEND_STOP, DELETE_TOPIC)


def worker_task_id(role: str) -> str:
    """`run_loader` / `run_sink` for a worker role."""
    return f"run_{role}"


# The maintenance DAGs (orchestration/maintenance.py): one task each.
SUMMARIZE_COVERAGE: Final = "summarize_coverage"
SWEEP: Final = "sweep"
