"""End-to-end harness: `dag.test()` subprocesses with the local runner against real services.

Each run gets its own AIRFLOW_HOME with a copy of one migrated SQLite DB (runs never share a
metadata DB, so they can run concurrently), the repo's dags/ folder with a small catalog
(STREAMFORGE_CATALOG), connections as AIRFLOW_CONN_* env, and a hard timeout (dag.test ignores
sensor/trigger timeouts; only killing the process group stops it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.dags.helpers import DAGS, REPO, catalog_data, write_catalog

ALERT_CONN = "streamforge_alert_webhook"


def base_env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STREAMFORGE_", "_AIRFLOW"))}
    return keep | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }


def migrate(home: Path, timeout: float = 300) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=base_env(home),
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=timeout,
    )
    return home / "airflow.db"


def e2e_catalog(path: Path, types: list[str], **defaults: Any) -> Path:
    settings: dict[str, Any] = {
        "runner": "local",
        "retries": 0,
        "topics": {"data_replication_factor": 1},
        "sensor": {"poke_interval_seconds": 1},
        "run": {"timeout_minutes": 5},
        "alerts": {"targets": [{"kind": "webhook", "conn_id": ALERT_CONN}], "run_deadline_minutes": None},
    }
    from streamforge.orchestration.catalog import deep_merge

    data = catalog_data([{"name": "e2e", "symbols": ["BTCUSDT"], "types": types}], **deep_merge(settings, defaults))
    return write_catalog(path, data)


def connections_env(
    kafka_broker: Any, arango_endpoint: Any, database: str, webhook_url: str, protocol: str = "PLAINTEXT"
) -> dict[str, str]:
    arango = urlsplit(arango_endpoint.url)
    hook = urlsplit(webhook_url)
    return {
        "AIRFLOW_CONN_STREAMFORGE_KAFKA": json.dumps(
            {
                "conn_type": "kafka",
                "extra": kafka_broker.client_config(protocol),
            }
        ),
        "AIRFLOW_CONN_STREAMFORGE_ARANGO": json.dumps(
            {
                "conn_type": "generic",
                "host": arango.hostname,
                "port": arango.port,
                "login": arango_endpoint.username,
                "password": arango_endpoint.password,
                "schema": database,
                "extra": {"protocol": arango.scheme},
            }
        ),
        f"AIRFLOW_CONN_{ALERT_CONN.upper()}": json.dumps(
            {
                "conn_type": "http",
                "host": hook.hostname,
                "port": hook.port,
                "schema": hook.scheme,
                "extra": {"endpoint": hook.path},
            }
        ),
    }


@dataclass
class DagTest:
    """One `dag.test` subprocess."""

    workdir: Path
    env: dict[str, str]
    dag_id: str
    logical_date: str
    conf: dict[str, Any] | None = None
    timeout: float = 300
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def log_path(self) -> Path:
        return self.workdir / "dagtest.log"

    def start(self) -> DagTest:
        command = [
            sys.executable,
            "-m",
            "tests.dags.dagtest_runner",
            self.dag_id,
            self.logical_date,
            "--out",
            str(self.workdir / "result.json"),
        ]
        if self.conf is not None:
            command += ["--conf", json.dumps(self.conf)]
        command += self.extra_args
        self.started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait(self) -> dict[str, Any]:
        assert self.process is not None
        remaining = max(self.timeout - (time.monotonic() - self.started), 1)
        try:
            self.process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.stop_workers()
            raise AssertionError(
                f"dag.test of {self.dag_id} {self.logical_date} exceeded {self.timeout}s\n{self.log_tail()}"
            ) from None
        self.seconds = time.monotonic() - self.started
        out = self.workdir / "result.json"
        if not out.exists():
            raise AssertionError(f"dag.test wrote no result (exit {self.process.returncode})\n{self.log_tail()}")
        self.result = json.loads(out.read_text())
        return self.result

    def run(self) -> dict[str, Any]:
        return self.start().wait()

    def stop_workers(self) -> None:
        """Local workers run in sessions of their own (they outlive tasks): stop their supervisors."""
        for pid_file in (self.workdir / "workers").glob("*/*/pid"):
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 120) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def new_home(template_db: Path, root: Path) -> Path:
    home = root / "airflow-home"
    home.mkdir(parents=True)
    shutil.copy(template_db, home / "airflow.db")
    return home


class WebhookReceiver:
    """A tiny HTTP server collecting the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                received.append({"_path": self.path, "_at": time.time(), **body})
                self.send_response(200)  # Slack's webhook client wants 200 "ok"
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
