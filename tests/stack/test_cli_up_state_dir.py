"""`streamforge up --state-dir X`, a run, `streamforge down`, `streamforge up --state-dir X` again:
the documents and the run history are still there.

The real command line in child processes: Kafka, PostgreSQL, the ArangoDB-compatible server,
the Binance replay and Airflow's four components, twice.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from arango import ArangoClient

from streamforge.stack import local as sf

DAG = "streamforge__btcusdt__api_candles_1m"
COLLECTION = "btcusdt_api_candles_1m_2020_01_02"
DAY = {"start": "2020-01-02", "end": "2020-01-03", "source": "archive"}

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def streamforge(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamforge", *args], capture_output=True, text=True, **kwargs)


class Up:
    """`streamforge up --state-dir` in the background, its output in a file."""

    def __init__(self, state: Path, log: Path) -> None:
        self.state, self.log_path = state, log
        self.log: IO[bytes] = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "streamforge", "up", "--state-dir", str(state)],
                                     stdout=self.log, stderr=subprocess.STDOUT)  # fmt: skip

    def wait_ready(self, timeout: float = 400) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not (self.state / "stack.json").exists():
            assert self.proc.poll() is None, f"streamforge up exited:\n{self.tail()}"
            assert time.monotonic() < deadline, f"streamforge up not ready after {timeout}s:\n{self.tail()}"
            time.sleep(1)
        return json.loads((self.state / "stack.json").read_text())

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        if self.proc.poll() is None:
            streamforge("down", "--state-dir", str(self.state), timeout=180)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def api(info: dict[str, Any]) -> httpx.Client:
    password = json.loads(Path(info["airflow_passwords_file"]).read_text())[info["airflow_user"]]
    token = httpx.post(f"{info['airflow_ui']}/auth/token", json={"username": info["airflow_user"],
                       "password": password}, timeout=60).json()["access_token"]  # fmt: skip
    return httpx.Client(base_url=info["airflow_ui"], headers={"Authorization": f"Bearer {token}"}, timeout=60)


def documents(info: dict[str, Any], state: Path) -> int:
    password = (state / "arango" / "root-password").read_text()
    db = ArangoClient(hosts=info["arango_url"]).db(info["arango_database"], info["arango_user"], password)
    return db.collection(COLLECTION).count() if db.has_collection(COLLECTION) else 0


@pytest.fixture
def state() -> Iterator[Path]:
    """A state folder PostgreSQL's own account can enter when the tests run as root (not under
    pytest's 0700 tmp folders)."""
    folder = Path(tempfile.mkdtemp(prefix="sf-state-", dir="/var/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_state_dir_keeps_documents_and_run_history_across_down_and_up(state: Path, tmp_path: Path) -> None:
    first = Up(state, tmp_path / "up-1.log")
    try:
        info = first.wait_ready()
        assert info["persistent"] is True
        status = streamforge("status", "--state-dir", str(state), timeout=60)
        assert status.returncode == 0 and '"scheduler": "healthy"' in status.stdout, status.stdout + status.stderr
        with api(info) as client:
            deadline = time.monotonic() + 180
            while client.get(f"/api/v2/dags/{DAG}").status_code != 200:
                assert time.monotonic() < deadline, "DAG not parsed"
                time.sleep(2)
            sf.unpause(client, DAG)
            run_id = sf.trigger(client, DAG, DAY)["dag_run_id"]
            run = sf.wait_for_run(client, DAG, run_id, timeout=420)
            assert run["state"] == "success", sf.task_states(client, DAG, run_id)
        assert documents(info, state) == 1440

        down = streamforge("down", "--state-dir", str(state), timeout=180)
        assert down.returncode == 0 and "data kept" in down.stdout, down.stdout + down.stderr
        assert first.proc.wait(30) == 0
        assert not (state / "stack.json").exists()
        assert streamforge("status", "--state-dir", str(state), timeout=60).returncode == 1
    finally:
        first.kill()

    second = Up(state, tmp_path / "up-2.log")
    try:
        info = second.wait_ready()
        assert documents(info, state) == 1440
        with api(info) as client:
            kept = {r["dag_run_id"]: r for r in sf.runs(client, DAG)}
            assert kept[run_id]["state"] == "success"
            assert sf.task_states(client, DAG, run_id)[(run_id, "verify")] == "success"
    finally:
        second.kill()
    assert second.proc.returncode == 0, second.tail()
