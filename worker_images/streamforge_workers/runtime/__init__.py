"""Shared worker runtime: JSON logs, metrics, telemetry, control listener, lifecycle (`worker.run`)."""

from streamforge_workers.runtime.control import ControlListener
from streamforge_workers.runtime.logs import configure_logging
from streamforge_workers.runtime.metrics import EVENTS, RECORDS, MetricsServer, start_metrics_server
from streamforge_workers.runtime.telemetry import Telemetry
from streamforge_workers.runtime.worker import FatalError, Interrupted, WorkerContext, run

__all__ = [
    "EVENTS",
    "RECORDS",
    "ControlListener",
    "FatalError",
    "Interrupted",
    "MetricsServer",
    "Telemetry",
    "WorkerContext",
    "configure_logging",
    "run",
    "start_metrics_server",
]
