"""Prometheus metrics of the loader (served by the runtime's metrics server).

Records produced are counted by the runtime (streamforge_records_total) from ctx.progress.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REQUESTS = Counter(
    "streamforge_loader_requests_total",
    "HTTP requests sent to Binance (REST API and archive), retries included",
)
HTTP_RETRIES = Counter(
    "streamforge_loader_http_retries_total",
    "HTTP requests repeated after a failure, by reason (429, 418, 5xx, timeout, connection, truncated, invalid_body)",
    ["reason"],
)
WAIT_SECONDS = Counter(
    "streamforge_loader_wait_seconds_total",
    "Seconds spent waiting before a request, by reason (weight, 429, 418, 5xx, timeout, ...)",
    ["reason"],
)
USED_WEIGHT = Gauge(
    "streamforge_loader_used_weight",
    "Binance request weight used in the current minute (X-MBX-USED-WEIGHT-1M of the last response)",
)
ARCHIVE_BYTES = Counter(
    "streamforge_loader_archive_bytes_total",
    "Bytes of verified data.binance.vision zip files downloaded",
)
