"""Worker tests: real worker subprocesses against the real Kafka broker.

Helpers shared by the worker test modules (runtime, dummy-service, debug-producer, and free for
the loader/sink tests to use):

* `worker_env(broker, queue_id, ...)`: the environment a worker gets (Kafka, queue, metrics off);
* `Worker`: a worker subprocess (`python -m <module>` or `python -c <code>`), output in files;
* `EventReader`: reads one queue's events from queue-events (from the time it was created);
* `send_command(...)`: puts a command on queue-control;
* `free_port()`, `json_lines(text)`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streamforge.contracts.messages import Command, CommandName, Event, MessageError, parse_event
from streamforge.stack.paths import REPO_ROOT
from streamforge.stack.ports import free_port as free_port  # re-exported for the worker tests

# Variables a worker reads; removed from the inherited environment so the host's never leak in.
_WORKER_VARS = (
    "QUEUE_ID SYMBOL TYPE TIME_RANGE KAFKA_TOPIC COLLECTION_NAME TELEMETRY_PRODUCER_ID QUEUE_CREATED_AT "
    "KAFKA_BOOTSTRAP_SERVERS KAFKA_SECURITY_PROTOCOL KAFKA_SASL_MECHANISM KAFKA_USER KAFKA_PASSWORD "
    "KAFKA_CA_PATH QUEUE_CONTROL_TOPIC QUEUE_EVENTS_TOPIC ARANGO_URL ARANGO_DB ARANGO_USER ARANGO_PASSWORD "
    "BINANCE_API_URL BINANCE_ARCHIVE_URL LOADER_SOURCE BATCH_SIZE ARANGO_BATCH_SIZE ARANGO_WRITE_OVERLAP "
    "LOG_LEVEL METRICS_PORT METRICS_HOST "
    "PROGRESS_INTERVAL DUMMY_LOADING_INTERVAL"
).split()


def unique_queue_id(prefix: str = "wf-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def base_env() -> dict[str, str]:
    """The test process's environment without any worker variable."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in _WORKER_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def worker_env(
    broker: Any,
    queue_id: str,
    protocol: str = "PLAINTEXT",
    *,
    created_at: datetime | None = None,
    **extra: str,
) -> dict[str, str]:
    """Env for one worker of `queue_id`; QUEUE_CREATED_AT defaults to one second ago."""
    env = base_env()
    env.update(broker.env(protocol))
    env.update(
        {
            "QUEUE_ID": queue_id,
            "QUEUE_CREATED_AT": iso(created_at or datetime.now(UTC) - timedelta(seconds=1)),
            "METRICS_PORT": "0",
            "METRICS_HOST": "127.0.0.1",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line parsed as JSON (fails the test on the first line that is not)."""
    out = []
    for line in text.splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AssertionError(f"log line is not JSON: {line!r}") from exc
    return out


class Worker:
    """A worker subprocess with stdout/stderr captured in files (no pipe can fill up)."""

    def __init__(self, args: list[str], env: Mapping[str, str], cwd: Path | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="sf-worker-")
        self._out = open(Path(self._dir.name) / "stdout", "w+b")
        self._err = open(Path(self._dir.name) / "stderr", "w+b")
        self.args = args
        self.proc = subprocess.Popen(args, env=dict(env), cwd=cwd or REPO_ROOT, stdout=self._out, stderr=self._err)

    @classmethod
    def module(cls, module: str, *args: str, env: Mapping[str, str]) -> Worker:
        return cls([sys.executable, "-m", module, *args], env)

    @classmethod
    def code(cls, code: str, *args: str, env: Mapping[str, str]) -> Worker:
        return cls([sys.executable, "-c", code, *args], env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.args[1:3]} did not exit within {timeout} s\nstdout:\n{self.stdout[-4000:]}\n"
                f"stderr:\n{self.stderr[-4000:]}"
            ) from None

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def _read(self, f: Any) -> str:
        f.flush()
        return Path(f.name).read_bytes().decode(errors="replace")

    @property
    def stdout(self) -> str:
        return self._read(self._out)

    @property
    def stderr(self) -> str:
        return self._read(self._err)

    def logs(self) -> list[dict[str, Any]]:
        return json_lines(self.stdout)

    def describe(self) -> str:
        return f"exit={self.proc.poll()}\nstdout:\n{self.stdout[-6000:]}\nstderr:\n{self.stderr[-3000:]}"

    def cleanup(self) -> None:
        self.kill()
        self._out.close()
        self._err.close()
        self._dir.cleanup()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class EventReader:
    """Reads the events of one queue from queue-events, starting at `since` (default: now - 5 s)."""

    def __init__(
        self,
        broker: Any,
        queue_id: str,
        protocol: str = "PLAINTEXT",
        since: datetime | None = None,
        topic: str = "queue-events",
    ) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.queue_id = queue_id
        self.events: list[Event] = []
        self.consumer = Consumer(
            broker.client_config(protocol)
            | {"group.id": f"test-events-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
        )
        since_ms = int((since or datetime.now(UTC) - timedelta(seconds=5)).timestamp() * 1000)
        parts = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        found = self.consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in parts], timeout=10)
        assignment = []
        for tp in found:
            if tp.offset < 0:
                tp.offset = self.consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)[1]
            assignment.append(tp)
        self.consumer.assign(assignment)

    def poll(self, seconds: float = 0.2) -> list[Event]:
        """Read what arrives within `seconds`; returns the new events of this queue."""
        new = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            msg = self.consumer.poll(min(left, 0.1))
            if msg is None or msg.error() is not None:
                continue
            try:
                event = parse_event(msg.value())
            except MessageError:
                continue
            if event.queue_id == self.queue_id:
                new.append(event)
        self.events += new
        return new

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 20, what: str = "event") -> Event:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if predicate(event):
                return event
        while time.monotonic() < deadline:
            for event in self.poll(0.2):
                if predicate(event):
                    return event
        raise AssertionError(
            f"no {what} for {self.queue_id} within {timeout} s; got {[e.status.value for e in self.events]}"
        )

    def wait_status(self, status: str, timeout: float = 20) -> Event:
        return self.wait_for(lambda e: e.status == status, timeout, what=f"{status!r} event")

    def drain(self, seconds: float = 1.0) -> list[Event]:
        self.poll(seconds)
        return self.events

    def statuses(self) -> list[str]:
        return [e.status.value for e in self.events]

    def terminal(self) -> list[Event]:
        return [e for e in self.events if e.is_terminal]

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> EventReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send_command(
    broker: Any,
    queue_id: str,
    command: str = "stop",
    *,
    target: str | None = None,
    reason: str | None = None,
    protocol: str = "PLAINTEXT",
    raw: bytes | None = None,
    topic: str = "queue-control",
) -> Command | None:
    """Produce a command (or `raw` bytes) to queue-control and wait for delivery."""
    from confluent_kafka import Producer

    producer = Producer(broker.client_config(protocol))
    cmd = None
    if raw is None:
        cmd = Command(queue_id=queue_id, command=CommandName(command), target=target, reason=reason)
        value = cmd.to_bytes()
    else:
        value = raw
    errors: list[Any] = []
    producer.produce(topic, key=queue_id.encode(), value=value, on_delivery=lambda e, _m: errors.append(e))
    assert producer.flush(15) == 0, "command not delivered"
    assert errors == [None], f"command delivery failed: {errors}"
    return cmd


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def only(items: Iterable[Any]) -> Any:
    items = list(items)
    assert len(items) == 1, f"expected exactly one, got {len(items)}: {items}"
    return items[0]
