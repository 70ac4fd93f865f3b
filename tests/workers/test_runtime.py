"""The shared worker runtime (streamforge_workers.runtime): lifecycle, exit codes, control, logs.

Workers run as real subprocesses (a tiny body given with `python -c`) against the real broker.
"""

from __future__ import annotations

import io
import json
import logging
import signal
import socket
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from streamforge.contracts.config import EXIT_CONFIG, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from tests.workers import (
    EventReader,
    Worker,
    base_env,
    free_port,
    only,
    send_command,
    unique_queue_id,
    worker_env,
)

# A worker whose body is chosen by TEST_MODE; component by TEST_COMPONENT.
SCRIPT = r"""
import os, time
from streamforge.contracts.config import RunEnv
from streamforge_workers.runtime.worker import FatalError, run

MODE = os.environ.get("TEST_MODE", "ok")


def body(ctx):
    ctx.log.info("body started", extra={"mode": MODE})
    if MODE == "ok":
        return 42
    if MODE == "fatal":
        raise FatalError("boom: the upstream said no")
    if MODE == "crash":
        raise ValueError("unexpected value 17")
    if MODE == "wait":
        ctx.wait(60)
        return 0
    if MODE == "sleep":
        ctx.wait(float(os.environ["TEST_SECONDS"]))
        return 7
    if MODE == "progress":
        end = time.monotonic() + float(os.environ["TEST_SECONDS"])
        n = 0
        while time.monotonic() < end:
            n += 10
            ctx.progress(n, extra_field="x")
            time.sleep(0.01)
        return n
    if MODE == "retry":
        import tenacity

        for attempt in tenacity.Retrying(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_none()):
            with attempt:
                ctx.wait(60)
        return 0
    raise SystemExit("unknown TEST_MODE")


run(os.environ.get("TEST_COMPONENT", "loader"), RunEnv, body)
"""

COMPONENT = "loader"


def runtime_env(broker, queue_id: str, mode: str, **extra: str) -> dict[str, str]:
    return worker_env(
        broker,
        queue_id,
        SYMBOL="BTCUSDT",
        TYPE="api_candles_1m",
        TELEMETRY_PRODUCER_ID=f"{COMPONENT}__abc123",
        TEST_MODE=mode,
        TEST_COMPONENT=COMPONENT,
        **extra,
    )


def start(env: dict[str, str]) -> Worker:
    return Worker.code(SCRIPT, env=env)


# --------------------------------------------------------------------------------------------
# configuration (no broker needed: exit 2 happens before any Kafka I/O)


@pytest.fixture
def trap_bootstrap():
    """A listening socket used as KAFKA_BOOTSTRAP_SERVERS: any Kafka I/O would connect to it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield f"127.0.0.1:{sock.getsockname()[1]}", sock
    sock.close()


def _connections(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


GOOD = {
    "QUEUE_ID": "wf-test-config",
    "SYMBOL": "BTCUSDT",
    "TYPE": "api_candles_1m",
    "TELEMETRY_PRODUCER_ID": "loader__abc123",
    "QUEUE_CREATED_AT": "2024-08-01T00:00:00Z",
    "METRICS_PORT": "0",
}


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"QUEUE_ID": None}, "QUEUE_ID"),
        ({"QUEUE_CREATED_AT": "yesterday"}, "QUEUE_CREATED_AT"),
        ({"SYMBOL": "btc usdt!"}, "SYMBOL"),
        ({"METRICS_PORT": "99999"}, "METRICS_PORT"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_USER"),
        ({"KAFKA_CA_PATH": "/nonexistent/ca.pem"}, "KAFKA_CA_PATH"),
    ],
)
def test_bad_config_exits_2_naming_the_variable_before_any_kafka_io(trap_bootstrap, change, variable):
    bootstrap, sock = trap_bootstrap
    env = base_env() | GOOD | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TEST_MODE": "ok"}
    for key, value in change.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    with start(env) as worker:
        code = worker.wait(30)
        assert code == EXIT_CONFIG, worker.describe()
        assert variable in worker.stderr, worker.describe()
        assert "configuration error" in worker.stderr
        assert "Traceback" not in worker.stderr
    time.sleep(0.1)
    assert _connections(sock) == 0, "the worker talked to Kafka before rejecting its configuration"


def test_help_works_without_any_environment():
    with Worker.code(SCRIPT, "--help", env=base_env()) as worker:
        assert worker.wait(30) == EXIT_OK, worker.describe()
        out = worker.stdout
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "QUEUE_ID", "QUEUE_CREATED_AT", "METRICS_PORT"):
            assert name in out
        assert "exit codes" in out


# --------------------------------------------------------------------------------------------
# lifecycle against the broker


@pytest.mark.kafka
def test_normal_run_finishes_with_one_terminal_event_and_json_logs(kafka_broker):
    queue_id = unique_queue_id()
    with EventReader(kafka_broker, queue_id) as reader, start(runtime_env(kafka_broker, queue_id, "ok")) as w:
        assert w.wait(30) == EXIT_OK, w.describe()
        finished = reader.wait_status("finished")
        reader.drain(0.5)
        assert reader.statuses() == ["started", "finished"]
        assert finished.finished and finished.records_written == 42
        assert finished.producer == f"{COMPONENT}__abc123"
        assert finished.component == COMPONENT
        assert (finished.symbol, finished.type, finished.queue_id) == ("BTCUSDT", "api_candles_1m", queue_id)
        assert not reader.events[0].finished

        logs = w.logs()  # every stdout line is one JSON object
        assert logs, w.describe()
        for line in logs:
            assert {"ts", "level", "logger", "msg"} <= line.keys()
            assert line["component"] == COMPONENT and line["queue_id"] == queue_id
            datetime.fromisoformat(line["ts"].replace("Z", "+00:00"))
        assert any(line["msg"] == "body started" and line.get("mode") == "ok" for line in logs)
        assert any(line.get("event", {}).get("status") == "finished" for line in logs)


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("mode", "message"),
    [("fatal", "boom: the upstream said no"), ("crash", "unexpected value 17")],
)
def test_body_error_emits_error_event_and_exits_1(kafka_broker, mode, message):
    queue_id = unique_queue_id()
    with EventReader(kafka_broker, queue_id) as reader, start(runtime_env(kafka_broker, queue_id, mode)) as w:
        assert w.wait(30) == EXIT_ERROR, w.describe()
        error = reader.wait_status("error")
        reader.drain(0.5)
        assert error.error_message == message
        assert error.finished
        assert only(reader.terminal()) == error
        assert [line for line in w.logs() if line["level"] == "ERROR"]


@pytest.mark.kafka
def test_stop_command_interrupts_with_exit_3(kafka_broker):
    queue_id = unique_queue_id()
    with (
        EventReader(kafka_broker, queue_id) as reader,
        start(runtime_env(kafka_broker, queue_id, "wait")) as w,
    ):
        reader.wait_status("started")
        sent = time.monotonic()
        send_command(kafka_broker, queue_id, "stop", target=COMPONENT, reason="sink reported error")
        assert w.wait(30) == EXIT_INTERRUPTED, w.describe()
        elapsed = time.monotonic() - sent
        interrupted = reader.wait_status("interrupted")
        reader.drain(0.5)
        assert only(reader.terminal()) == interrupted
        assert interrupted.finished
        assert "stop command" in interrupted.message and "sink reported error" in interrupted.message
        assert interrupted.extra["command"]["target"] == COMPONENT
        assert elapsed < 10, f"stop took {elapsed:.1f} s"


@pytest.mark.kafka
def test_stop_sent_before_the_worker_started_is_obeyed(kafka_broker):
    queue_id = unique_queue_id()
    created = datetime.now(UTC) - timedelta(seconds=2)
    send_command(kafka_broker, queue_id, "stop", reason="stopped early")  # target null: every component
    env = runtime_env(kafka_broker, queue_id, "ok") | {"QUEUE_CREATED_AT": created.isoformat()}
    with EventReader(kafka_broker, queue_id) as reader, start(env) as w:
        assert w.wait(30) == EXIT_INTERRUPTED, w.describe()
        interrupted = reader.wait_status("interrupted")
        reader.drain(0.5)
        assert reader.statuses() == ["started", "interrupted"]
        assert "stopped early" in interrupted.message
        assert not any(line["msg"] == "body started" for line in w.logs()), "the body ran despite the stop"


@pytest.mark.kafka
def test_stops_for_other_queues_or_targets_and_garbage_are_ignored(kafka_broker):
    queue_id = unique_queue_id()
    env = runtime_env(kafka_broker, queue_id, "sleep", TEST_SECONDS="2.5")
    with EventReader(kafka_broker, queue_id) as reader, start(env) as w:
        reader.wait_status("started")
        send_command(kafka_broker, f"{queue_id}-other", "stop")
        send_command(kafka_broker, queue_id[:-1], "stop")  # a prefix is not the queue id
        send_command(kafka_broker, queue_id, "stop", target="arango-candles")
        send_command(kafka_broker, queue_id, raw=b"{not json")
        send_command(kafka_broker, queue_id, raw=json.dumps({"queue_id": queue_id, "command": "explode"}).encode())
        assert w.wait(30) == EXIT_OK, w.describe()
        finished = reader.wait_status("finished")
        reader.drain(0.3)
        assert finished.records_written == 7
        assert reader.statuses() == ["started", "finished"]
        skipped = [line for line in w.logs() if "skipping unreadable control message" in line["msg"]]
        assert len(skipped) == 2, w.describe()


@pytest.mark.kafka
def test_sigterm_interrupts_with_exit_3(kafka_broker):
    queue_id = unique_queue_id()
    with (
        EventReader(kafka_broker, queue_id) as reader,
        start(runtime_env(kafka_broker, queue_id, "wait")) as w,
    ):
        reader.wait_status("started")
        w.signal(signal.SIGTERM)
        assert w.wait(30) == EXIT_INTERRUPTED, w.describe()
        interrupted = reader.wait_status("interrupted")
        reader.drain(0.3)
        assert only(reader.terminal()) == interrupted
        assert "SIGTERM" in interrupted.message
        assert interrupted.extra["signal"] == "SIGTERM"


@pytest.mark.kafka
def test_interrupted_wrapped_by_tenacity_is_still_interrupted(kafka_broker):
    queue_id = unique_queue_id()
    with (
        EventReader(kafka_broker, queue_id) as reader,
        start(runtime_env(kafka_broker, queue_id, "retry")) as w,
    ):
        reader.wait_status("started")
        send_command(kafka_broker, queue_id, "stop")
        assert w.wait(30) == EXIT_INTERRUPTED, w.describe()
        reader.wait_status("interrupted")


@pytest.mark.kafka
def test_progress_is_throttled_and_carries_rate(kafka_broker):
    queue_id = unique_queue_id()
    env = runtime_env(kafka_broker, queue_id, "progress", TEST_SECONDS="1.3", PROGRESS_INTERVAL="0.4")
    with EventReader(kafka_broker, queue_id) as reader, start(env) as w:
        assert w.wait(30) == EXIT_OK, w.describe()
        finished = reader.wait_status("finished")
        reader.drain(0.3)
        loading = [e for e in reader.events if e.status == "loading"]
        # ~100 progress() calls in 1.3 s, at most one event per 0.4 s
        assert 2 <= len(loading) <= 5, reader.statuses()
        counts = [e.records_written for e in loading]
        assert counts == sorted(counts) and counts[0] > 0
        assert all(e.extra["rate_per_s"] >= 0 and e.extra["extra_field"] == "x" for e in loading)
        assert finished.records_written >= counts[-1]


# --------------------------------------------------------------------------------------------
# in-process units: metrics server and log formatting


def test_metrics_server_serves_metrics_and_healthz(monkeypatch):
    from streamforge_workers.runtime.metrics import EVENTS, start_metrics_server

    monkeypatch.setenv("METRICS_HOST", "127.0.0.1")
    assert start_metrics_server(0) is None
    EVENTS.labels("loader", "started").inc()
    server = start_metrics_server(free_port())
    assert server is not None
    try:
        base = f"http://127.0.0.1:{server.port}"
        metrics = httpx.get(f"{base}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert 'streamforge_events_total{component="loader",status="started"}' in metrics.text
        assert "streamforge_records_total" in metrics.text
        health = httpx.get(f"{base}/healthz", timeout=5)
        assert (health.status_code, health.text.strip()) == (200, "ok")
        assert httpx.get(f"{base}/nope", timeout=5).status_code == 404
        # a busy port does not fail the worker: no server, a warning instead
        assert start_metrics_server(server.port) is None
    finally:
        server.close()


def test_json_log_lines_carry_static_fields_extras_and_exceptions():
    from streamforge_workers.runtime.logs import JsonFormatter, parse_level

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter({"component": "loader", "queue_id": "q1"}))
    log = logging.getLogger("test.runtime.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("wrote %d records", 5, extra={"records": 5, "when": datetime(2024, 8, 1, tzinfo=UTC)})
        try:
            raise RuntimeError("kaput")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "wrote 5 records" and first["level"] == "WARNING"
    assert first["logger"] == "test.runtime.json"
    assert first["component"] == "loader" and first["queue_id"] == "q1" and first["records"] == 5
    assert first["when"].startswith("2024-08-01") and first["ts"].endswith("Z")
    assert second["exc_type"] == "RuntimeError" and "kaput" in second["exc"]
    assert parse_level("debug") == logging.DEBUG and parse_level("WARN") == logging.WARNING
    with pytest.raises(ValueError, match="LOUD"):
        parse_level("LOUD")


def test_runtime_imports_stay_light():
    """The runtime must not pull the sink/loader stacks (the dummy image would pay for them)."""
    code = (
        "import sys, streamforge_workers.runtime, streamforge_workers.dummy_service.service; "
        "print(sorted(m for m in ('arango', 'httpx', 'tenacity', 'airflow') if m in sys.modules))"
    )
    with Worker([sys.executable, "-c", code], env=base_env()) as w:
        assert w.wait(30) == 0, w.describe()
        assert w.stdout.strip() == "[]"
