"""The `local` runner: a WorkerSpec as a child process on the Airflow worker's machine.

The worker runs as `sys.executable -m <module> <args>` under a tiny supervisor
(streamforge.orchestration.supervise) that records its exit code. The task is a
reschedule-mode sensor (poke mode with the catalog's `sensor.mode: poke`): its first poke
starts the process, later pokes copy the new output into the task log and, once the exit code
is there, decide the task (ARCHITECTURE §5): 0 ok; 1 error, 2 bad configuration, 3 interrupted,
or a signal fail it with the worker's own message.

Why not one blocking execute(): the loader, the sink and the outcome sensor must run at the
same time, and a blocking task would hold a worker slot for hours; under `dag.test`, which runs
tasks one at a time, the sink would wait forever for a loader that has not started.

The env is the spec's (rendered from the plan) plus, added only when the process starts, the
settings and credentials derived from the Airflow connections (connections.worker_env): they
never appear in a template field, a log line or an XCom. Process state lives in
$STREAMFORGE_LOCAL_STATE_DIR (default: <tmp>/streamforge-local) under the queue id; a worker
never runs twice under one queue id (a task cleared without `plan` is refused).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook, BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from streamforge.contracts.config import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    DummySettings,
    LoaderSettings,
    SinkSettings,
    env_names,
)
from streamforge.orchestration.catalog import DagSpec
from streamforge.orchestration.connections import worker_env
from streamforge.orchestration.guards import claim_queue
from streamforge.orchestration.root_cause import INTERRUPTED
from streamforge.orchestration.spec import WorkerSpec, needs_arango, plan_ref

STATE_DIR_ENV = "STREAMFORGE_LOCAL_STATE_DIR"
# Parent variables a worker must not inherit: Airflow's own (connections, secrets, tokens)
# and anything a worker reads, which comes only from the plan and the connections.
# Never inherited from the Airflow worker: its own settings, and every variable a worker reads
# (derived from the settings models), so only the plan and the connections configure a worker.
_DROPPED_PREFIXES = ("AIRFLOW", "_AIRFLOW")
_DROPPED = env_names(LoaderSettings, SinkSettings, DummySettings)
_TAIL_LINES = 40
_KILL_GRACE = timedelta(minutes=1)


def inherited_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if not k.startswith(_DROPPED_PREFIXES) and k.upper() not in _DROPPED}


def error_text(lines: list[str]) -> str:
    """The worker's last error message (its logs are JSON lines), else its last line."""
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and str(record.get("level", "")).upper() in ("ERROR", "CRITICAL"):
            return str(record.get("error_message") or record.get("msg") or line)
    for line in reversed(lines):
        if line.strip():
            return line.strip()
    return "no output"


def state_root() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or Path(tempfile.gettempdir()) / "streamforge-local")


class WorkerProcess:
    """The on-disk state of one worker process: owner, pid, output, exit code."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.owner_file = directory / "owner"
        self.pid_file = directory / "pid"
        self.log_file = directory / "output.log"
        self.offset_file = directory / "offset"
        self.exit_file = directory / "exit"

    @property
    def started(self) -> bool:
        return self.owner_file.exists()

    @property
    def owner(self) -> str:
        return self.owner_file.read_text()

    def start(self, owner: str, command: list[str], env: dict[str, str], kill_at: datetime) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.owner_file.write_text(owner)
        supervisor = [
            sys.executable,
            "-m",
            "streamforge.orchestration.supervise",
            "--exit-file",
            str(self.exit_file),
            "--kill-at",
            kill_at.isoformat(),
            "--",
            *command,
        ]
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(
                supervisor,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives this task process; signals only on purpose
            )
        self.pid_file.write_text(str(process.pid))
        return process.pid

    def new_lines(self) -> list[str]:
        offset = int(self.offset_file.read_text()) if self.offset_file.exists() else 0
        if not self.log_file.exists():
            return []
        with open(self.log_file, "rb") as log:
            log.seek(offset)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]  # a partial last line waits for the next poke
        self.offset_file.write_text(str(offset + len(complete)))
        return complete.decode(errors="replace").splitlines()

    def tail(self, lines: int = _TAIL_LINES) -> list[str]:
        if not self.log_file.exists():
            return []
        return list(collections.deque(self.log_file.read_text(errors="replace").splitlines(), maxlen=lines))

    def exit_code(self) -> int | None:
        try:
            return int(self.exit_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    @property
    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def alive(self) -> bool:
        pid = self.pid
        if pid is None:
            return False
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
            if waited == pid:
                return False
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM the supervisor, which forwards it to the worker."""
        pid = self.pid
        if pid is not None and self.exit_code() is None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


class LocalWorkerOperator(BaseSensorOperator):
    template_fields = ("env", "module", "args", "deadline", "queue_id")
    template_fields_renderers = {"env": "json"}
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        role: str,
        component: str,
        module: str,
        args: list[str],
        env: dict[str, str],
        static_env: dict[str, str],
        kafka_conn_id: str,
        arango_conn_id: str | None,
        deadline: str,
        queue_id: str,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.role = role
        self.component = component
        self.module = module
        self.args = args
        self.env = env
        self.static_env = static_env
        self.kafka_conn_id = kafka_conn_id
        self.arango_conn_id = arango_conn_id
        self.deadline = deadline
        self.queue_id = queue_id

    def _process(self) -> WorkerProcess:
        return WorkerProcess(state_root() / self.queue_id / self.role)

    def _child_env(self) -> dict[str, str]:
        arango = BaseHook.get_connection(self.arango_conn_id) if self.arango_conn_id else None
        secrets = worker_env(BaseHook.get_connection(self.kafka_conn_id), arango)
        return inherited_env(os.environ) | self.static_env | self.env | secrets

    def poke(self, context: Context) -> bool:
        ti = context["ti"]
        # The task instance id is unique per try and stays the same across reschedules; a run
        # deleted and created again with the same run id (same queue id) gets a new one.
        owner = f"{ti.run_id} try {ti.try_number} ti {ti.id}"
        process = self._process()
        # Named as the outcome sensor names it (component and telemetry producer id), so an alert
        # quotes the same worker whichever of the two failed first; the queue id finds its state.
        producer = self.env.get("TELEMETRY_PRODUCER_ID")
        name = f"{self.component} ({producer}, {self.queue_id})" if producer else f"{self.component} ({self.queue_id})"
        if not process.started:
            claim_queue(context, self.queue_id)
            command = [sys.executable, "-m", self.module, *self.args]
            kill_at = datetime.fromisoformat(self.deadline) + _KILL_GRACE
            pid = process.start(owner, command, self._child_env(), kill_at)
            self.log.info("started %s: %s (supervisor pid %d, state %s)", name, " ".join(command[1:]), pid, process.dir)
            return False
        if process.owner != owner:
            raise AirflowFailException(
                f"{name} already ran for this plan ({process.owner}); a queue id is used once: clear "
                "`plan` with this task (clear with downstream, or the whole run) so it plans a new attempt"
            )
        for line in process.new_lines():
            self.log.info("[%s] %s", self.component, line)
        code = process.exit_code()
        if code is None:
            if not process.alive():
                raise AirflowFailException(f"{name}: the worker process disappeared without an exit code")
            return False
        self._judge(name, code, process.tail())
        return True

    def _judge(self, name: str, code: int, tail: list[str]) -> None:
        if code == EXIT_OK:
            self.log.info("%s finished (exit 0)", name)
            return
        if code == EXIT_INTERRUPTED:
            raise AirflowFailException(
                f"{name} {INTERRUPTED} (exit 3): it obeyed a `stop` for its queue or was terminated; "
                "see send_stop / await_outcome for why"
            )
        if code == EXIT_ERROR:
            raise AirflowFailException(f"{name} failed (exit 1): {error_text(tail)}")
        if code == EXIT_CONFIG:
            raise AirflowFailException(f"{name} rejected its configuration (exit 2): {error_text(tail)}")
        if code < 0:
            raise AirflowFailException(f"{name} was killed by signal {signal.Signals(-code).name}")
        raise AirflowFailException(f"{name} exited with unexpected code {code}: {error_text(tail)}")

    def on_kill(self) -> None:
        self.log.warning("task killed: stopping %s", self.component)
        self._process().stop()


def local_operator(spec: DagSpec, worker: WorkerSpec, **kwargs: Any) -> LocalWorkerOperator:
    settings = spec.settings
    return LocalWorkerOperator(
        task_id=worker.task_id,
        role=worker.role.value,
        component=worker.component.value,
        module=worker.module,
        args=list(worker.args),
        env=dict(worker.env),
        static_env={
            "QUEUE_EVENTS_TOPIC": settings.topics.events,
            "QUEUE_CONTROL_TOPIC": settings.topics.control,
            "METRICS_PORT": "0",  # many workers share one machine: no fixed port
        },
        kafka_conn_id=settings.connections.kafka,
        arango_conn_id=settings.connections.arango if needs_arango(worker.role) else None,
        deadline=plan_ref("deadline"),
        queue_id=worker.queue_id,
        poke_interval=settings.sensor.poke_interval_seconds,
        mode=settings.waiting_mode,
        timeout=timedelta(minutes=settings.run.max_timeout_minutes + 30).total_seconds(),
        retries=0,
        **kwargs,
    )
