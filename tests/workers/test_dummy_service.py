"""dummy-service: one test per flag, ping/pong, stop, metrics and health over HTTP."""

from __future__ import annotations

import signal
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamforge.contracts.config import EXIT_CONFIG, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from tests.workers import (
    EventReader,
    Worker,
    base_env,
    free_port,
    only,
    send_command,
    unique_queue_id,
    wait_until,
    worker_env,
)

MODULE = "streamforge_workers.dummy_service"
PRODUCER = "dummy-service__d0d0d0"


def dummy_env(broker, queue_id: str, **extra: str) -> dict[str, str]:
    return worker_env(broker, queue_id, TELEMETRY_PRODUCER_ID=PRODUCER, **extra)


def dummy(env: dict[str, str], *flags: str) -> Worker:
    return Worker.module(MODULE, *flags, env=env)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


# --------------------------------------------------------------------------------------------
# no broker needed


def test_help_works_without_any_environment():
    with Worker.module(MODULE, "--help", env=base_env()) as w:
        assert w.wait(30) == EXIT_OK, w.describe()
        for flag in (
            "--debug",
            "--noop",
            "--simulate-loading",
            "--fail-after",
            "--exit-on-ping",
            "--exit-after",
        ):
            assert flag in w.stdout
        assert "DUMMY_LOADING_INTERVAL" in w.stdout


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        (["--noop", "--exit-on-ping"], {}, "--exit-on-ping"),
        (["--fail-after", "soon"], {}, "--fail-after"),
        (["--exit-after", "-1"], {}, "--exit-after"),
        (["--bogus"], {}, "unrecognized arguments"),
        ([], {"DUMMY_LOADING_INTERVAL": "fast"}, "DUMMY_LOADING_INTERVAL"),
        ([], {"QUEUE_ID": ""}, "QUEUE_ID"),
    ],
)
def test_bad_arguments_or_config_exit_2(flags, env, expected):
    full = base_env() | {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "QUEUE_ID": "q",
        "QUEUE_CREATED_AT": "2024-08-01T00:00:00Z",
        "METRICS_PORT": "0",
    }
    with dummy(full | env, *flags) as w:
        assert w.wait(30) == EXIT_CONFIG, w.describe()
        assert expected in w.stderr, w.describe()


# --------------------------------------------------------------------------------------------
# against the broker


@pytest.mark.kafka
def test_ping_pong_metrics_healthz_then_stop(kafka_broker):
    """No flags: answers pings (with metrics to show it), serves /healthz, obeys stop."""
    queue_id = unique_queue_id("wf-dummy")
    port = free_port()
    with (
        EventReader(kafka_broker, queue_id) as reader,
        dummy(dummy_env(kafka_broker, queue_id, METRICS_PORT=str(port))) as w,
    ):
        reader.wait_status("started")
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert (health.status_code, health.text.strip()) == (200, "ok")

        ping = send_command(kafka_broker, queue_id, "ping")
        pong = reader.wait_status("pong")
        assert not pong.finished and pong.producer == PRODUCER and pong.component == "dummy-service"
        assert pong.extra["ping_sent_at"] == ping.sent_at
        wait_until(lambda: scrape(port)[("dummy_pongs_total", ())] == 1, 5, "dummy_pongs_total 1")

        m = scrape(port)
        assert m[("dummy_pings_total", ())] == 1
        assert m[("dummy_pongs_total", ())] == 1
        assert m[("dummy_errors_total", ())] == 0
        assert m[("dummy_events_total", (("event", "started"),))] == 1
        assert m[("dummy_events_total", (("event", "pong"),))] == 1
        assert m[("dummy_events_total", (("event", "finished"),))] == 0
        assert m[("dummy_status_last", (("status", "started"),))] == 1
        for other in ("loading", "finished", "error", "interrupted"):
            assert m[("dummy_status_last", (("status", other),))] == 0
        assert m[("streamforge_events_total", (("component", "dummy-service"), ("status", "pong")))] == 1

        send_command(kafka_broker, queue_id, "stop", target="dummy-service", reason="test over")
        assert w.wait(30) == EXIT_INTERRUPTED, w.describe()
        interrupted = reader.wait_status("interrupted")
        reader.drain(0.3)
        assert "test over" in interrupted.message
        assert only(reader.terminal()) == interrupted
        assert reader.statuses() == ["started", "pong", "interrupted"]


@pytest.mark.kafka
def test_debug_flag_logs_at_debug_level(kafka_broker):
    queue_id = unique_queue_id("wf-dummy")
    with dummy(dummy_env(kafka_broker, queue_id), "--debug", "--exit-after", "0") as w:
        assert w.wait(30) == EXIT_OK, w.describe()
        levels = {line["level"] for line in w.logs()}
        assert "DEBUG" in levels, w.describe()
    with dummy(dummy_env(kafka_broker, queue_id), "--exit-after", "0") as w:
        assert w.wait(30) == EXIT_OK, w.describe()
        assert "DEBUG" not in {line["level"] for line in w.logs()}


@pytest.mark.kafka
def test_noop_ignores_ping_and_ends_on_sigterm(kafka_broker):
    queue_id = unique_queue_id("wf-dummy")
    with (
        EventReader(kafka_broker, queue_id) as reader,
        dummy(dummy_env(kafka_broker, queue_id), "--noop") as w,
    ):
        reader.wait_status("started")
        send_command(kafka_broker, queue_id, "ping")
        send_command(kafka_broker, queue_id, "stop")
        reader.drain(1.5)
        assert w.proc.poll() is None, "--noop must not read commands"
        assert reader.statuses() == ["started"]
        w.signal(signal.SIGTERM)
        assert w.wait(30) == EXIT_INTERRUPTED, w.describe()
        interrupted = reader.wait_status("interrupted")
        assert "SIGTERM" in interrupted.message
        reader.drain(0.3)
        assert only(reader.terminal()) == interrupted


@pytest.mark.kafka
def test_simulate_loading_emits_growing_loading_events(kafka_broker):
    queue_id = unique_queue_id("wf-dummy")
    env = dummy_env(kafka_broker, queue_id, DUMMY_LOADING_INTERVAL="0.3")
    with (
        EventReader(kafka_broker, queue_id) as reader,
        dummy(env, "--simulate-loading", "--exit-after", "1.05") as w,
    ):
        assert w.wait(30) == EXIT_OK, w.describe()
        finished = reader.wait_status("finished")
        reader.drain(0.3)
        loading = [e.records_written for e in reader.events if e.status == "loading"]
        assert loading == [100, 200, 300], reader.statuses()
        assert finished.records_written == 300
        assert reader.statuses() == ["started", "loading", "loading", "loading", "finished"]


@pytest.mark.kafka
def test_fail_after_emits_error_and_exits_1(kafka_broker):
    queue_id = unique_queue_id("wf-dummy")
    with (
        EventReader(kafka_broker, queue_id) as reader,
        dummy(dummy_env(kafka_broker, queue_id), "--fail-after", "0.5") as w,
    ):
        t0 = time.monotonic()
        assert w.wait(30) == EXIT_ERROR, w.describe()
        error = reader.wait_status("error")
        reader.drain(0.3)
        assert "--fail-after 0.5" in error.error_message
        assert error.finished
        assert only(reader.terminal()) == error
        assert time.monotonic() - t0 >= 0.5


@pytest.mark.kafka
def test_exit_on_ping_finishes_after_the_pong(kafka_broker):
    queue_id = unique_queue_id("wf-dummy")
    with (
        EventReader(kafka_broker, queue_id) as reader,
        dummy(dummy_env(kafka_broker, queue_id), "--exit-on-ping") as w,
    ):
        reader.wait_status("started")
        ping = send_command(kafka_broker, queue_id, "ping")
        assert w.wait(30) == EXIT_OK, w.describe()
        reader.wait_status("finished")
        reader.drain(0.3)
        assert reader.statuses() == ["started", "pong", "finished"]
        assert reader.events[1].extra["ping_sent_at"] == ping.sent_at


@pytest.mark.kafka
def test_exit_after_finishes_with_exit_0(kafka_broker):
    queue_id = unique_queue_id("wf-dummy")
    with (
        EventReader(kafka_broker, queue_id) as reader,
        dummy(dummy_env(kafka_broker, queue_id), "--exit-after", "0.6") as w,
    ):
        t0 = time.monotonic()
        assert w.wait(30) == EXIT_OK, w.describe()
        assert time.monotonic() - t0 >= 0.6
        finished = reader.wait_status("finished")
        reader.drain(0.3)
        assert finished.finished and only(reader.terminal()) == finished
        assert reader.statuses() == ["started", "finished"]


@pytest.mark.kafka
def test_pings_for_another_queue_or_target_are_not_answered(kafka_broker):
    queue_id = unique_queue_id("wf-dummy")
    with (
        EventReader(kafka_broker, queue_id) as reader,
        dummy(dummy_env(kafka_broker, queue_id), "--exit-on-ping") as w,
    ):
        reader.wait_status("started")
        send_command(kafka_broker, f"{queue_id}-x", "ping")
        send_command(kafka_broker, queue_id, "ping", target="loader")
        mine = send_command(kafka_broker, queue_id, "ping", target="dummy-service")  # read after the others
        assert w.wait(30) == EXIT_OK, w.describe()
        reader.wait_status("finished")
        reader.drain(0.3)
        assert reader.statuses() == ["started", "pong", "finished"]
        assert reader.events[1].extra["ping_sent_at"] == mine.sent_at
