"""Runners: turn a WorkerSpec into an Airflow task (a pod, or a local child process)."""

from __future__ import annotations

from typing import Any

from streamforge.orchestration.catalog import DagSpec, Runner
from streamforge.orchestration.spec import WorkerSpec


def worker_task(spec: DagSpec, worker: WorkerSpec, **kwargs: Any) -> Any:
    """The operator running `worker` with the pipeline's runner (imports only that runner)."""
    if spec.settings.runner is Runner.KUBERNETES:
        from streamforge.orchestration.runners.kubernetes import pod_operator

        return pod_operator(spec, worker, **kwargs)
    from streamforge.orchestration.runners.local import local_operator

    return local_operator(spec, worker, **kwargs)
