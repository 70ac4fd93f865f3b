"""Infrastructure of the workers benchmark: one broker, one ArangoDB test server, one replay server.

Everything the benchmark measures runs as a child process of `python -m bench workers`, so no two
measured things share an interpreter (GIL) and all of them see the same broker and servers:

* Apache Kafka 4.2.0 (plugins/streamforge/stack/kafka.py) with the full JIT (the harness' default stops at C1
  to save start-up CPU in tests; throughput wants C2);
* the ArangoDB-compatible test server as its own process (ArangoTestServerProcess);
* the Binance replay server as its own process (`python -m streamforge.stack.binance_replay`).

Worker processes are waited for with os.wait4, which gives the child's own CPU time and peak RSS;
/proc/<pid>/status VmHWM is sampled meanwhile as a cross-check.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arango import ArangoClient
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamforge.contracts.messages import Event, parse_event
from streamforge.stack.arango_server import ArangoTestServerProcess
from streamforge.stack.kafka import CONTROL_TOPICS, KafkaBroker

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# The harness default minus -XX:TieredStopAtLevel=1 (C1 only), as plugins/streamforge/stack/kafka.py suggests.
BENCH_KAFKA_JVM_OPTS = "-XX:+UseSerialGC -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true"
ARANGO_DB = "sf_bench"
# A throw-away root password for the benchmark's own test server, new every run.
ARANGO_PASSWORD = secrets.token_urlsafe(16)
QUEUE_EVENTS = "queue-events"


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of every child: this interpreter's, with the repo importable (bench, tests)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "ARANGO_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------------------------
# Child processes: wait with rusage, sample VmHWM


def vm_hwm_kb(pid: int) -> int:
    """Peak RSS of a live process since its exec (VmHWM), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    except OSError:
        return 0


def cpu_seconds(pid: int | None) -> float:
    """User+system CPU seconds of a live process (/proc/<pid>/stat), 0.0 if unavailable."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat), for the foreign load."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def vm_rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
    except OSError:
        return 0


@dataclass
class Child:
    """A started child process; `poll()` reaps it with os.wait4 (its own rusage)."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    returncode: int | None = None
    cpu_s: float = 0.0
    maxrss_kb: int = 0  # ru_maxrss of this child (kB on Linux)
    hwm_kb: int = 0  # sampled VmHWM

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def wall_s(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def poll(self) -> bool:
        """True once the child has exited (and was reaped here)."""
        if self.returncode is not None:
            return True
        self.hwm_kb = max(self.hwm_kb, vm_hwm_kb(self.pid))
        pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.ended = time.monotonic()
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode  # keep Popen from waiting for a reaped pid
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.maxrss_kb = usage.ru_maxrss
        return True

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            while not self.poll():
                time.sleep(0.02)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"

    def result(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "peak_rss_mb": round(max(self.maxrss_kb, self.hwm_kb) / 1024, 1),
            "peak_rss_mb_vmhwm": round(self.hwm_kb / 1024, 1),
            "peak_rss_mb_rusage": round(self.maxrss_kb / 1024, 1),
        }


class ChildFailed(RuntimeError):
    pass


def start_child(name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> Child:
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv, env=dict(env), cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    return Child(name, proc, log_path)


def wait_all(children: Iterable[Child], timeout: float, interval: float = 0.05) -> None:
    """Wait for every child (sampling VmHWM); kill all and raise on timeout or a failed exit."""
    children = list(children)
    deadline = time.monotonic() + timeout
    while not all(c.poll() for c in children):
        if time.monotonic() > deadline:
            for c in children:
                c.kill()
            raise ChildFailed(
                f"timeout after {timeout:.0f} s: "
                + "; ".join(f"{c.name} (log tail:\n{c.log_tail()})" for c in children)
            )
        time.sleep(interval)
    failed = [c for c in children if c.returncode != 0]
    if failed:
        raise ChildFailed("; ".join(f"{c.name} exited {c.returncode}; log tail:\n{c.log_tail()}" for c in failed))


def run_json_child(name: str, argv: list[str], log_dir: Path, timeout: float) -> tuple[dict[str, Any], Child]:
    """Run a bench helper child that prints one JSON object as its last stdout line."""
    out_path = log_dir / f"{name}.json"
    with out_path.open("wb") as out, (log_dir / f"{name}.log").open("ab") as err:
        proc = subprocess.Popen(argv, env=child_env(), cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    child = Child(name, proc, log_dir / f"{name}.log")
    wait_all([child], timeout)
    lines = out_path.read_text().strip().splitlines()
    if not lines:
        raise ChildFailed(f"{name} printed no result; log tail:\n{child.log_tail()}")
    return json.loads(lines[-1]), child


# --------------------------------------------------------------------------------------------
# The stack


class Stack:
    """Broker + ArangoDB test server + replay server, all child processes; a context manager."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.broker: KafkaBroker | None = None
        self.arango: ArangoTestServerProcess | None = None
        self.replay: subprocess.Popen[str] | None = None
        self.replay_urls: dict[str, str] = {}
        self.jvm_opts = ""
        self.timings: dict[str, float] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Stack:
        os.environ.setdefault("STREAMFORGE_KAFKA_JVM_OPTS", BENCH_KAFKA_JVM_OPTS)
        self.jvm_opts = os.environ["STREAMFORGE_KAFKA_JVM_OPTS"]
        began = time.monotonic()
        self.replay = self._start_replay()
        self.arango = self.start_arango()
        self.timings["servers_start_s"] = round(time.monotonic() - began, 2)
        began = time.monotonic()
        self.broker = KafkaBroker().start()
        self.broker.create_topics(CONTROL_TOPICS)
        self.timings["broker_start_s"] = round(time.monotonic() - began, 2)
        return self

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.arango is not None:
            self.arango.stop()
            self.arango = None
        if self.replay is not None:
            self.replay.send_signal(signal.SIGTERM)
            try:
                self.replay.wait(10)
            except subprocess.TimeoutExpired:
                self.replay.kill()
                self.replay.wait()
            if self.replay.stdout is not None:
                self.replay.stdout.close()
            self.replay = None

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_replay(self) -> subprocess.Popen[str]:
        # No request-weight limit: the benchmark measures the pipeline, not Binance's quota.
        cmd = [sys.executable, "-m", "streamforge.stack.binance_replay", "--port", "0", "--weight-limit", "0"]
        with (self.log_dir / "replay.log").open("ab") as err:
            proc = subprocess.Popen(cmd, env=child_env(), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if not line:
            proc.kill()
            raise RuntimeError("the Binance replay server did not report its URLs")
        self.replay_urls = json.loads(line)
        return proc

    def start_arango(self) -> ArangoTestServerProcess:
        """A fresh ArangoDB test server process (empty) with the benchmark database."""
        server = ArangoTestServerProcess(root_password=ARANGO_PASSWORD).start()
        client = ArangoClient(hosts=server.url)
        try:
            client.db("_system", "root", ARANGO_PASSWORD, verify=True).create_database(ARANGO_DB)
        finally:
            client.close()
        return server

    def restart_arango(self) -> ArangoTestServerProcess:
        """Replace the server with a fresh one, so its memory figure covers one stage only."""
        if self.arango is not None:
            self.arango.stop()
        self.arango = self.start_arango()
        return self.arango

    # -- helpers -----------------------------------------------------------------------------
    @property
    def kafka(self) -> KafkaBroker:
        assert self.broker is not None
        return self.broker

    @property
    def arango_url(self) -> str:
        assert self.arango is not None
        return self.arango.url

    def arango_db(self) -> Any:
        client = ArangoClient(hosts=self.arango_url)
        return client.db(ARANGO_DB, "root", ARANGO_PASSWORD, verify=False)

    def broker_cpu_s(self) -> float:
        """CPU seconds the Kafka broker JVM has used so far."""
        return cpu_seconds(self.broker.pid if self.broker is not None else None)

    def replay_cpu_s(self) -> float:
        return cpu_seconds(self.replay.pid if self.replay is not None else None)

    def infra_cpu_s(self) -> float:
        """CPU seconds of broker + ArangoDB test server + replay server so far."""
        return self.broker_cpu_s() + self.arango_cpu_s() + self.replay_cpu_s()

    def arango_cpu_s(self) -> float:
        """CPU seconds the ArangoDB test server process has used so far."""
        return cpu_seconds(self.arango.pid if self.arango is not None else None)

    def collection_count(self, name: str) -> int:
        db = self.arango_db()
        return db.collection(name).count() if db.has_collection(name) else 0

    def drop_collection(self, name: str) -> None:
        db = self.arango_db()
        if db.has_collection(name):
            db.delete_collection(name)

    def new_topic(self, prefix: str, partitions: int = 1) -> str:
        topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kafka.create_topics([topic], partitions=partitions)
        return topic

    def delete_topics(self, topics: Iterable[str]) -> None:
        topics = [t for t in topics if t]
        if not topics:
            return
        # Keep the client referenced until the futures are done: a collected AdminClient drops
        # its pending requests and their futures never complete.
        admin = AdminClient(self.kafka.client_config(log_level=4))
        futures = admin.delete_topics(topics, operation_timeout=30, request_timeout=30)
        for future in futures.values():
            with contextlib.suppress(Exception):
                future.result(timeout=35)
        del admin

    def connection_args(self) -> list[str]:
        """CLI arguments that tell a bench helper child where everything is."""
        return [
            "--bootstrap",
            self.kafka.bootstrap,
            "--arango-url",
            self.arango_url,
            "--arango-db",
            ARANGO_DB,
            "--arango-password",
            ARANGO_PASSWORD,
        ]

    # -- worker environments -------------------------------------------------------------------
    def worker_env(self, queue_id: str, symbol: str, data_type: str, topic: str, producer: str) -> dict[str, str]:
        return child_env(
            {
                **self.kafka.env("PLAINTEXT"),
                "QUEUE_ID": queue_id,
                "SYMBOL": symbol,
                "TYPE": data_type,
                "KAFKA_TOPIC": topic,
                "TELEMETRY_PRODUCER_ID": producer,
                "QUEUE_CREATED_AT": datetime.now(UTC).isoformat(),
                "METRICS_PORT": "0",
                "LOG_LEVEL": "INFO",
            }
        )

    def loader_env(
        self, queue_id: str, symbol: str, data_type: str, topic: str, time_range: str, archive_url: str
    ) -> dict[str, str]:
        env = self.worker_env(queue_id, symbol, data_type, topic, f"loader__{queue_id[-6:]}")
        env.update(
            {
                "TIME_RANGE": time_range,
                "LOADER_SOURCE": "auto",
                "BINANCE_API_URL": self.replay_urls["api_url"],
                "BINANCE_ARCHIVE_URL": archive_url,
            }
        )
        return env

    def sink_env(self, queue_id: str, symbol: str, data_type: str, topic: str, collection: str) -> dict[str, str]:
        env = self.worker_env(queue_id, symbol, data_type, topic, f"sink__{queue_id[-6:]}")
        env.update(
            {
                "COLLECTION_NAME": collection,
                "ARANGO_URL": self.arango_url,
                "ARANGO_DB": ARANGO_DB,
                "ARANGO_USER": "root",
                "ARANGO_PASSWORD": ARANGO_PASSWORD,
            }
        )
        return env

    # -- telemetry -----------------------------------------------------------------------------
    def events(self, queue_id: str, components: set[str], timeout: float = 20.0) -> list[Event]:
        """The run's events on queue-events, read until every component's terminal event."""
        consumer = Consumer(self.kafka.client_config(group_id=f"bench-{uuid.uuid4().hex}", enable_auto_commit=False))
        try:
            meta = consumer.list_topics(QUEUE_EVENTS, timeout=10).topics[QUEUE_EVENTS]
            consumer.assign([TopicPartition(QUEUE_EVENTS, p, 0) for p in meta.partitions])
            events: list[Event] = []
            deadline = time.monotonic() + timeout
            key = queue_id.encode()
            while time.monotonic() < deadline:
                for msg in consumer.consume(1000, timeout=0.2):
                    if msg.error() is None and msg.key() == key:
                        events.append(parse_event(msg.value()))
                if components <= {e.component for e in events if e.is_terminal}:
                    return events
            raise RuntimeError(f"no terminal event of {sorted(components)} for {queue_id} in {timeout:.0f} s")
        finally:
            consumer.close()
