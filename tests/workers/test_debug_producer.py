"""debug-producer: ping/pong round trips, timeouts, bad arguments, SASL_SSL."""

from __future__ import annotations

import re
import time

import pytest

from streamforge.contracts.config import EXIT_CONFIG, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from tests.workers import EventReader, Worker, base_env, unique_queue_id, worker_env

MODULE = "streamforge_workers.debug_producer"
DUMMY = "streamforge_workers.dummy_service"
PONG_LINE = re.compile(r"^pong from (\S+) in (\d+(?:\.\d+)?) ms$", re.MULTILINE)


def cli_env(broker, protocol: str = "PLAINTEXT") -> dict[str, str]:
    return base_env() | broker.env(protocol)


def debug_producer(env: dict[str, str], *args: str) -> Worker:
    return Worker.module(MODULE, *args, env=env)


def start_dummy(broker, queue_id: str, protocol: str = "PLAINTEXT", *flags: str) -> Worker:
    env = worker_env(broker, queue_id, protocol, TELEMETRY_PRODUCER_ID="dummy-service__feed01")
    return Worker.module(DUMMY, *flags, env=env)


def test_help_works_without_any_environment():
    with debug_producer(base_env(), "--help") as w:
        assert w.wait(30) == EXIT_OK, w.describe()
        for flag in (
            "--queue-id",
            "--command",
            "--target",
            "--expect-pong",
            "--timeout",
            "--repeat",
            "--interval",
        ):
            assert flag in w.stdout
        assert "KAFKA_BOOTSTRAP_SERVERS" in w.stdout


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--command", "ping"], None, "--queue-id"),
        (["--queue-id", "q"], None, "--command"),
        (["--queue-id", "q", "--command", "explode"], None, "invalid choice"),
        (["--queue-id", "q", "--command", "ping", "--repeat", "0"], None, "--repeat"),
        (["--queue-id", "q", "--command", "ping", "--timeout", "-2"], None, "--timeout"),
        (["--queue-id", "q", "--command", "stop", "--expect-pong"], None, "--expect-pong"),
        (["--queue-id", "q", "--command", "stop", "--target", "nobody"], None, "--target"),
        (["--queue-id", "q", "--command", "ping"], {}, "KAFKA_BOOTSTRAP_SERVERS"),
        (
            ["--queue-id", "q", "--command", "ping"],
            {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "KAFKA_USER",
        ),
    ],
)
def test_bad_arguments_or_config_exit_2(args, env, expected):
    full = base_env() | (env if env is not None else {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    with debug_producer(full, *args) as w:
        assert w.wait(30) == EXIT_CONFIG, w.describe()
        assert expected in w.stderr, w.describe()


@pytest.mark.kafka
def test_ping_expect_pong_prints_rtt_and_exits_0(kafka_broker):
    queue_id = unique_queue_id("wf-dp")
    with EventReader(kafka_broker, queue_id) as reader, start_dummy(kafka_broker, queue_id) as dummy:
        reader.wait_status("started")
        with debug_producer(
            cli_env(kafka_broker),
            "--queue-id",
            queue_id,
            "--command",
            "ping",
            "--expect-pong",
            "--timeout",
            "10",
        ) as cli:
            assert cli.wait(30) == EXIT_OK, cli.describe() + "\n--- dummy:\n" + dummy.describe()
            match = only_match(cli.stdout)
            assert match.group(1) == "dummy-service__feed01"
            assert 0 < float(match.group(2)) < 10_000
        # Without --expect-pong: sent, delivered, exit 0. A stop ends the dummy.
        with debug_producer(
            cli_env(kafka_broker), "--queue-id", queue_id, "--command", "stop", "--target", "dummy-service"
        ) as cli:
            assert cli.wait(30) == EXIT_OK, cli.describe()
            assert f"sent stop to {queue_id}" in cli.stdout
        assert dummy.wait(30) == EXIT_INTERRUPTED, dummy.describe()


def only_match(text: str) -> re.Match[str]:
    matches = list(PONG_LINE.finditer(text))
    assert len(matches) == 1, text
    return matches[0]


@pytest.mark.kafka
def test_no_pong_exits_1_after_the_timeout(kafka_broker):
    queue_id = unique_queue_id("wf-nobody")
    t0 = time.monotonic()
    with debug_producer(
        cli_env(kafka_broker), "--queue-id", queue_id, "--command", "ping", "--expect-pong", "--timeout", "2"
    ) as cli:
        assert cli.wait(30) == EXIT_ERROR, cli.describe()
        elapsed = time.monotonic() - t0
        assert f"no pong from {queue_id} within 2 s" in cli.stderr
        assert 2 <= elapsed < 10, f"took {elapsed:.1f} s"
        assert f"sent ping to {queue_id}" in cli.stdout


@pytest.mark.kafka
def test_repeated_pings_over_sasl_ssl_scram(kafka_broker):
    queue_id = unique_queue_id("wf-dp-sasl")
    with (
        EventReader(kafka_broker, queue_id) as reader,
        start_dummy(kafka_broker, queue_id, "SASL_SSL", "--debug") as dummy,
    ):
        reader.wait_status("started")
        env = cli_env(kafka_broker, "SASL_SSL")
        with debug_producer(
            env,
            "--queue-id", queue_id, "--command", "ping", "--expect-pong",
            "--repeat", "2", "--interval", "0.2", "--timeout", "10",
        ) as cli:  # fmt: skip
            assert cli.wait(30) == EXIT_OK, cli.describe() + "\n--- dummy:\n" + dummy.describe()
            assert len(PONG_LINE.findall(cli.stdout)) == 2, cli.stdout
            secret = kafka_broker.scram_password
            assert secret not in cli.stdout + cli.stderr
        dummy.signal()
        assert dummy.wait(30) == EXIT_INTERRUPTED, dummy.describe()
        assert kafka_broker.scram_password not in dummy.stdout + dummy.stderr
        pongs = [e for e in reader.drain(0.3) if e.status == "pong"]
        assert len(pongs) == 2
