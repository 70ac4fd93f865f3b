"""Prometheus metrics: a tiny HTTP server with `/metrics` and `/healthz`.

Shared metric objects live here; components add their own with the prefixes
`streamforge_loader_*`, `streamforge_sink_*` and `dummy_*`.
"""

from __future__ import annotations

import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

EVENTS = Counter(
    "streamforge_events_total",
    "Telemetry events emitted to queue-events, by component and status",
    ["component", "status"],
)
# Incremented by the runtime from the cumulative counts passed to ctx.progress() and returned
# by the body (only the increase is added), so components must not increment it themselves.
RECORDS = Counter(
    "streamforge_records_total",
    "Records processed (loader: produced; sink: written), by component",
    ["component"],
)


def _handler_class(registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "streamforge-metrics"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, encoder(registry), content_type)
            elif path == "/healthz":
                self._reply(200, b"ok\n", "text/plain; charset=utf-8")
            else:
                self._reply(404, b"not found\n", "text/plain; charset=utf-8")

        def _reply(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("metrics http: " + format, *args)

    return Handler


class MetricsServer:
    """A running metrics endpoint; `.port` is the bound port."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry = REGISTRY) -> None:
        self._httpd = ThreadingHTTPServer((host, port), _handler_class(registry))
        self._httpd.daemon_threads = True
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(port: int, host: str = "0.0.0.0") -> MetricsServer | None:
    """Serve /metrics and /healthz on `port` (0 → not started). Env METRICS_HOST overrides `host`.

    A port that cannot be bound (e.g. two local-runner workers on the default 8000) is logged as
    a warning and the worker goes on without metrics: metrics must never fail a data run.
    """
    if not port:
        return None
    host = os.environ.get("METRICS_HOST") or host
    try:
        server = MetricsServer(host, port)
    except OSError as exc:
        log.warning("metrics server not started on %s:%s: %s", host, port, exc, extra={"metrics_port": port})
        return None
    log.info("metrics on http://%s:%s/metrics", host, server.port, extra={"metrics_port": server.port})
    return server
