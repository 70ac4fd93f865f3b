"""Prometheus metrics of the sinks (served by the runtime's metrics server)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECORDS_WRITTEN = Counter(
    "streamforge_sink_records_written",
    "Records written to ArangoDB and committed on the data topic (this process)",
    ["component"],
)
BATCHES = Counter("streamforge_sink_batches", "Batches written to ArangoDB", ["component"])
BATCH_SECONDS = Histogram(
    "streamforge_sink_batch_seconds",
    "Time to write one batch to ArangoDB, retries included",
    ["component"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ARANGO_RETRIES = Counter(
    "streamforge_sink_arango_retries",
    "ArangoDB requests retried after a transient failure",
    ["component"],
)


def register(component: str) -> None:
    """Create this component's series at zero, so dashboards see 0 rather than no data."""
    for metric in (RECORDS_WRITTEN, BATCHES, BATCH_SECONDS, ARANGO_RETRIES):
        metric.labels(component)
