"""Real Airflow 3 components for tests and the demo: api-server, scheduler, triggerer, dag-processor.

One private AIRFLOW_HOME, PostgreSQL metadata DB (SQLite breaks on backfills), LocalExecutor,
simple auth manager with a generated admin password, a shared JWT secret, everything on
127.0.0.1. Extra environment (connections as AIRFLOW_CONN_*, STREAMFORGE_*) is passed to every
component, which is exactly how a deployment injects them.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from streamforge.stack.paths import REPO_ROOT
from streamforge.stack.ports import free_port

COMPONENTS = ("api-server", "scheduler", "triggerer", "dag-processor")


def _kept_secrets(path: Path) -> dict[str, str]:
    """The admin password and signing keys of this AIRFLOW_HOME: generated once, reused by a
    restart on the same home (`streamforge up --state-dir`), so stored secrets stay readable."""
    if path.exists():
        return json.loads(path.read_text())
    kept = {
        "password": secrets.token_urlsafe(16),
        "fernet_key": Fernet.generate_key().decode(),
        "secret_key": secrets.token_urlsafe(32),
        "jwt_secret": secrets.token_urlsafe(32),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(kept))
    return kept


class AirflowStack:
    def __init__(
        self,
        sqlalchemy_url: str,
        extra_env: Mapping[str, str] | None = None,
        dags_folder: Path = REPO_ROOT / "dags",
        parallelism: int = 8,
        home: Path | None = None,
        component_env: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """`component_env`: extra env of one component only (e.g. the scheduler, whose
        LocalExecutor runs the tasks, and the triggerer each get their own Kubernetes identity)."""
        self.home = home or Path(tempfile.mkdtemp(prefix="sf-airflow-"))
        self.component_env = {name: dict(env) for name, env in (component_env or {}).items()}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.username = "admin"
        kept = _kept_secrets(self.home / "secrets.json")
        self.password = kept["password"]
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({self.username: self.password}))
        passwords.chmod(0o600)
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": kept["fernet_key"],
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__SECRET_KEY": kept["secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": kept["jwt_secret"],
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "PYTHONUNBUFFERED": "1",
            # `verify` writes the run note through the REST API (orchestration/run_note.py).
            "AIRFLOW_CONN_STREAMFORGE_AIRFLOW_API": json.dumps(
                {"conn_type": "http", "host": "127.0.0.1", "port": self.port, "schema": "http",
                 "login": self.username, "password": self.password}
            ),
            **(extra_env or {}),
        }
        self._token: str | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def airflow(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run an `airflow` CLI command against this stack."""
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def start(self, timeout: float = 180) -> AirflowStack:
        self.airflow("db", "migrate")
        for component in COMPONENTS:
            log = (self.home / f"{component}.log").open("wb")
            self._procs[component] = subprocess.Popen(
                [sys.executable, "-m", "airflow", component],
                env=self.env | self.component_env.get(component, {}),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        atexit.register(self.stop)
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                last = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                if all(
                    last.get(part, {}).get("status") == "healthy"
                    for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                ):
                    return
            except (httpx.HTTPError, ValueError) as exc:
                last = exc
            time.sleep(1)
        raise TimeoutError(f"Airflow not healthy after {timeout} s: {last}")

    def stop(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._procs.clear()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def running(self) -> bool:
        """Every component is still running."""
        return bool(self._procs) and all(proc.poll() is None for proc in self._procs.values())

    def log_tail(self, component: str, lines: int = 60) -> str:
        path = self.home / f"{component}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # --- REST -------------------------------------------------------------------------------

    def token(self) -> str:
        if self._token is None:
            response = httpx.post(
                f"{self.url}/auth/token", json={"username": self.username, "password": self.password}, timeout=30
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def client(self) -> httpx.Client:
        """An authenticated REST client (`/api/v2/...`)."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token()}"}, timeout=60)

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until the dag-processor has serialised `dag_id`."""
        deadline = time.monotonic() + timeout
        with self.client() as api:
            while time.monotonic() < deadline:
                if api.get(f"/api/v2/dags/{dag_id}").status_code == 200:
                    return
                time.sleep(1)
        raise TimeoutError(f"DAG {dag_id} not parsed after {timeout} s:\n{self.log_tail('dag-processor')}")
