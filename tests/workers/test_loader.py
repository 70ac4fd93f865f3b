"""The loader as a real process: Binance replay (real data, injected faults) → real Kafka.

Each test starts `python -m streamforge_workers.loader` with an env dict, waits for its exit
code, then reads the data topic and queue-events with confluent-kafka consumers.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from streamforge.contracts.messages import Command, CommandName, Event, Status, parse_event
from streamforge.contracts.records import Candle, EndOfStream, Trade, candles_from_csv, is_eos
from streamforge.stack.binance_replay import Catalog
from streamforge.stack.ports import free_port

pytestmark = pytest.mark.kafka

DAY_MS = 86_400_000
EVENTS_TOPIC, CONTROL_TOPIC = "queue-events", "queue-control"


# -- harness ------------------------------------------------------------------------------------


@dataclass
class Run:
    """A finished (or killed) loader process and what it left behind."""

    rc: int
    seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str
    queue_id: str
    topic: str
    ended: float = 0.0  # time.monotonic() when the process was reaped
    events: list[Event] = field(default_factory=list)

    @property
    def terminal(self) -> Event:
        terminal = [e for e in self.events if e.is_terminal]
        assert len(terminal) == 1, f"expected one terminal event, got {[e.status for e in self.events]}"
        return terminal[0]

    def loading(self) -> list[Event]:
        return [e for e in self.events if e.status is Status.LOADING]

    def explain(self) -> str:
        events = [(e.status.value, e.message) for e in self.events]
        return f"rc={self.rc}\nevents={events}\nstderr={self.stderr[-3000:]}"


class Loader:
    """Builds the env of one loader run and runs it."""

    def __init__(self, broker: Any, replay: Any, tmp: Path) -> None:
        self.broker, self.replay, self.tmp = broker, replay, tmp

    def env(
        self,
        *,
        time_range: str,
        symbol: str = "BTCUSDT",
        data_type: str = "api_candles_1m",
        source: str = "rest",
        partitions: int = 1,
        protocol: str = "PLAINTEXT",
        created_at: datetime | None = None,
        **extra: str,
    ) -> dict[str, str]:
        h6 = uuid.uuid4().hex[:6]
        day = time_range[:10].replace("-", "")
        queue_id = f"wf-{symbol.lower()}-{data_type}-{day}-{h6}"
        topic = f"{queue_id}-data"
        self.broker.create_topics([topic], partitions=partitions)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""),) if p),
            **self.broker.env(protocol),
            "QUEUE_ID": queue_id,
            "SYMBOL": symbol,
            "TYPE": data_type,
            "TIME_RANGE": time_range,
            "KAFKA_TOPIC": topic,
            "TELEMETRY_PRODUCER_ID": f"loader__{h6}",
            "QUEUE_CREATED_AT": (created_at or datetime.now(UTC)).isoformat(),
            "LOADER_SOURCE": source,
            "BINANCE_API_URL": self.replay.api_url,
            "BINANCE_ARCHIVE_URL": self.replay.archive_url,
            "METRICS_PORT": "0",
            "METRICS_HOST": "127.0.0.1",
            "PROGRESS_INTERVAL": "1",
            "LOG_LEVEL": "INFO",
            **extra,
        }
        return {k: v for k, v in env.items() if v}

    def start(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        tag = env.get("QUEUE_ID", uuid.uuid4().hex)
        out = open(self.tmp / f"{tag}.out", "wb")
        err = open(self.tmp / f"{tag}.err", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "streamforge_workers.loader"], env=env, stdout=out, stderr=err)
        proc._files = (out, err)  # type: ignore[attr-defined]
        proc._started = time.monotonic()  # type: ignore[attr-defined]
        return proc

    def finish(self, proc: subprocess.Popen[bytes], env: dict[str, str], timeout: float = 60) -> Run:
        rc, peak_mb = wait_child(proc, timeout)
        ended = time.monotonic()
        for f in proc._files:  # type: ignore[attr-defined]
            f.close()
        tag = env.get("QUEUE_ID", "")
        run = Run(
            rc=rc,
            seconds=ended - proc._started,  # type: ignore[attr-defined]
            peak_rss_mb=peak_mb,
            stdout=(self.tmp / f"{tag}.out").read_text(errors="replace"),
            stderr=(self.tmp / f"{tag}.err").read_text(errors="replace"),
            queue_id=tag,
            topic=env.get("KAFKA_TOPIC", ""),
            ended=ended,
        )
        if rc in (0, 1, 3):
            run.events = read_events(self.broker, tag)
        return run

    def run(self, env: dict[str, str], timeout: float = 60) -> Run:
        return self.finish(self.start(env), env, timeout)


def _peak_rss_mb(pid: int) -> float | None:
    """VmHWM of a live process: its own peak RSS since exec (ru_maxrss of a forked child also
    counts the parent's memory at fork time, so it is useless here)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def wait_child(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """Exit code and peak RSS in MB (last VmHWM sample) of `proc`; kills it after `timeout`."""
    deadline = time.monotonic() + timeout
    peak = 0.0
    while True:
        sample = _peak_rss_mb(proc.pid)
        peak = max(peak, sample or 0.0)
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, peak
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"loader still running after {timeout} s")
        time.sleep(0.02)


def _consumer(broker: Any) -> Consumer:
    return Consumer(
        broker.client_config()
        | {
            "group.id": f"test-loader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )


def read_events(broker: Any, queue_id: str, timeout: float = 15) -> list[Event]:
    """Every event of `queue_id` up to its terminal one (events of other runs are skipped)."""
    consumer = _consumer(broker)
    try:
        parts = consumer.list_topics(EVENTS_TOPIC, timeout=10).topics[EVENTS_TOPIC].partitions
        consumer.assign([TopicPartition(EVENTS_TOPIC, p, OFFSET_BEGINNING) for p in parts])
        events: list[Event] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            if msg.key() != queue_id.encode():
                continue
            event = parse_event(msg.value())
            events.append(event)
            if event.is_terminal:
                return events
        raise AssertionError(f"no terminal event for {queue_id} within {timeout} s: {[e.status for e in events]}")
    finally:
        consumer.close()


def read_topic(broker: Any, topic: str, timeout: float = 30) -> tuple[list[tuple[int, bytes, bytes]], dict[int, int]]:
    """(partition, key, value) of every record, and the EOS marker's `records` per partition.

    Call after the loader exited: reads every partition up to its high watermark.
    """
    consumer = _consumer(broker)
    try:
        parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        highs = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        records: list[tuple[int, bytes, bytes]] = []
        eos: dict[int, int] = {}
        pending = {p for p in parts if highs[p] > 0}
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, f"{topic}: partitions {pending} not read within {timeout} s"
            for msg in consumer.consume(10_000, 0.2):
                if msg.error() is not None:
                    continue
                p = msg.partition()
                assert p not in eos, f"a message after the EOS marker on partition {p}"
                if is_eos(msg.headers()):
                    eos[p] = EndOfStream.model_validate_json(msg.value()).records
                else:
                    records.append((p, msg.key(), msg.value()))
                if msg.offset() + 1 >= highs[p]:
                    pending.discard(p)
        return records, eos
    finally:
        consumer.close()


def send_stop(broker: Any, queue_id: str) -> float:
    producer = Producer(broker.client_config())
    cmd = Command(queue_id=queue_id, command=CommandName.STOP, reason="test stop")
    producer.produce(CONTROL_TOPIC, key=cmd.kafka_key(), value=cmd.to_bytes())
    assert producer.flush(10) == 0
    return time.monotonic()


@cache
def source_candles(day: str) -> tuple[Candle, ...]:
    """The day's rows of the original zip, through the contracts parser."""
    path = Catalog().kline_days[("spot", "BTCUSDT", "1m", day)].path
    with zipfile.ZipFile(path) as zf, zf.open(zf.namelist()[0]) as raw:
        return tuple(candles_from_csv("BTCUSDT", "1m", io.TextIOWrapper(raw, "utf-8")))


class MetricsScraper:
    """Scrape /metrics every 0.1 s while the process lives; keeps the last answer."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.last = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.last = httpx.get(self.url, timeout=1).text
            except httpx.HTTPError:
                pass

    def close(self) -> str:
        self._stop.set()
        self._thread.join(2)
        return self.last


def metric(text: str, name: str, **labels: str) -> float | None:
    label = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + (f"{{{label}}}" if label else "")) + r" ([0-9.e+-]+)"
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


@pytest.fixture
def loader(kafka_broker: Any, binance_replay_clean: Any, tmp_path: Path) -> Loader:
    return Loader(kafka_broker, binance_replay_clean, tmp_path)


MEASURED: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _report_measurements() -> Iterator[None]:
    yield
    if MEASURED:
        print("\nloader measurements:", json.dumps(MEASURED, indent=1))


# -- complete loads -----------------------------------------------------------------------------


@pytest.mark.parametrize("day", ["2020-01-01", "2020-01-02", "2020-01-03"])
@pytest.mark.parametrize("source", ["rest", "archive"])
def test_one_day_of_1m_candles(loader: Loader, source: str, day: str) -> None:
    partitions = 1 if source == "rest" else 2  # the archive runs also prove the EOS on every partition
    env = loader.env(time_range=f"{day}:{day}", source=source, partitions=partitions)  # seed form: one day
    run = loader.run(env)
    assert run.rc == 0, run.explain()
    records, eos = read_topic(loader.broker, run.topic)
    assert eos == {p: 1440 for p in range(partitions)}
    assert run.terminal.status is Status.FINISHED and run.terminal.records_written == 1440
    expected = {c.key: c for c in source_candles(day)}
    got = {key.decode(): Candle.from_bytes(value) for _, key, value in records}
    assert len(records) == 1440 and got == expected
    for p in range(partitions):  # in order within each partition
        times = [Candle.from_bytes(v).open_time for q, _, v in records if q == p]
        assert times == sorted(times)
    stats = loader.replay.stats()["requests"]
    if source == "rest":
        assert set(stats) == {"/api/v3/klines"} and stats["/api/v3/klines"] == 2  # 1000 + 440
    else:
        assert not any(path.startswith("/api/") for path in stats)
    body_s = run.terminal.extra["duration_s"]
    MEASURED[f"1m {day} {source}"] = {
        "seconds_process": round(run.seconds, 2),
        "seconds_body": body_s,
        "records_per_s": round(1440 / body_s),
        "peak_rss_mb": round(run.peak_rss_mb, 1),
    }


def test_a_day_of_coin_m_aggtrades_streams_in_bounded_memory(loader: Loader) -> None:
    env = loader.env(
        time_range="2026-05-08/2026-05-09",
        symbol="BTCUSD_PERP",
        data_type="api_trades",
        source="archive",
        BINANCE_ARCHIVE_URL=loader.replay.futures_cm_archive_url,
    )
    run = loader.run(env, timeout=120)
    assert run.rc == 0, run.explain()
    assert run.terminal.records_written == 105_280
    records, eos = read_topic(loader.broker, run.topic, timeout=60)
    assert eos == {0: 105_280} and len(records) == 105_280
    trades = [Trade.from_bytes(v) for _, _, v in records]
    assert trades[0].trade_id == 480_537_903 and trades[-1].trade_id == 480_643_182
    for prev, cur in itertools.pairwise(trades):
        assert cur.trade_id == prev.trade_id + 1 and cur.first_trade_id == prev.last_trade_id + 1
    assert all(1_778_198_400_000 <= t.timestamp < 1_778_284_800_000 for t in (trades[0], trades[-1]))
    finished = run.terminal.extra["duration_s"]
    rates = [e.extra.get("rate_per_s") for e in run.loading() if "rate_per_s" in e.extra]
    MEASURED["aggTrades 2026-05-08 archive"] = {
        "seconds_process": round(run.seconds, 2),
        "seconds_body": finished,
        "records_per_s": round(105_280 / finished),
        "progress_rates": rates,
        "peak_rss_mb": round(run.peak_rss_mb, 1),
    }
    # A whole-day list of these Trade models alone would add ~140 MB (measured); the
    # streamed load stays near the interpreter + librdkafka baseline.
    assert run.peak_rss_mb < 120, run.peak_rss_mb


def test_auto_takes_past_days_from_the_archive_and_the_rest_from_rest(loader: Loader) -> None:
    env = loader.env(time_range="2020-01-01T00:00:00Z/2020-01-03T12:00:00Z", source="auto")
    run = loader.run(env)
    assert run.rc == 0, run.explain()
    plan = run.loading()[0]
    assert "2 day(s) from the archive, 1 part(s) from the REST API" in plan.message
    assert [p["source"] for p in plan.extra["plan"]] == ["archive", "archive", "rest"]
    stats = loader.replay.stats()["requests"]
    assert {p for p in stats if p.startswith("/data/")} == {
        f"/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-0{d}.zip{ext}"
        for d in (1, 2)
        for ext in ("", ".CHECKSUM")
    }
    assert stats["/api/v3/klines"] == 1  # 720 candles of 2020-01-03
    records, eos = read_topic(loader.broker, run.topic)
    expected = [c for day in ("2020-01-01", "2020-01-02", "2020-01-03") for c in source_candles(day)][:3600]
    assert eos == {0: 3600} and [Candle.from_bytes(v) for _, _, v in records] == expected


def test_sasl_ssl_scram_listener(loader: Loader) -> None:
    env = loader.env(time_range="2020-01-02/2020-01-03", source="rest", protocol="SASL_SSL")
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    run = loader.run(env)
    assert run.rc == 0, run.explain()
    records, eos = read_topic(loader.broker, run.topic)
    assert eos == {0: 1440} and [Candle.from_bytes(v) for _, _, v in records] == list(source_candles("2020-01-02"))


# -- faults -------------------------------------------------------------------------------------


def test_429_is_waited_out_visibly(loader: Loader) -> None:
    loader.replay.add_fault("rate_limit", path_prefix="/api/v3/klines", times=1, retry_after=2)
    port = free_port()
    env = loader.env(time_range="2020-01-01/2020-01-02", METRICS_PORT=str(port))
    proc = loader.start(env)
    scraper = MetricsScraper(port)
    run = loader.finish(proc, env)
    metrics = scraper.close()
    assert run.rc == 0, run.explain()
    assert run.terminal.records_written == 1440
    waits = [e for e in run.loading() if e.extra.get("reason") == "429"]
    assert [(e.message, e.extra) for e in waits] == [
        ("rate limited by Binance (HTTP 429), waiting 2 s", {"wait_seconds": 2, "reason": "429"})
    ]
    assert run.seconds >= 2
    assert metric(metrics, "streamforge_loader_wait_seconds_total", reason="429") == 2.0
    assert metric(metrics, "streamforge_loader_http_retries_total", reason="429") == 1.0
    assert metric(metrics, "streamforge_loader_requests_total") >= 1
    assert metric(metrics, "streamforge_loader_used_weight") is not None


def test_5xx_and_a_slow_response_are_survived(loader: Loader) -> None:
    loader.replay.add_fault("server_error", status=503, path_prefix="/data/", times=2)
    loader.replay.add_fault("delay", delay_seconds=2, path_prefix="/api/v3/klines", times=1)
    env = loader.env(time_range="2020-01-01T00:00:00Z/2020-01-02T06:00:00Z", source="auto")
    run = loader.run(env)
    assert run.rc == 0, run.explain()
    assert run.terminal.records_written == 1440 + 360
    retries = [e.extra for e in run.loading() if e.extra.get("reason") == "5xx"]
    assert [r["wait_seconds"] for r in retries] == [0.5, 1.0]
    assert run.seconds >= 2 + 1.5
    records, eos = read_topic(loader.broker, run.topic)
    assert eos == {0: 1800} and len(records) == 1800


def test_418_ban_longer_than_max_wait_is_an_error(loader: Loader) -> None:
    loader.replay.add_fault("ip_ban", path_prefix="/api/v3/klines", retry_after=600)
    run = loader.run(loader.env(time_range="2020-01-01/2020-01-02", BINANCE_MAX_WAIT_SECONDS="120"))
    assert run.rc == 1, run.explain()
    assert run.terminal.status is Status.ERROR
    assert run.terminal.error_message.startswith("Binance banned this IP for 600 s (HTTP 418)")
    assert "BINANCE_MAX_WAIT_SECONDS=120" in run.terminal.error_message
    assert run.seconds < 10


def test_bad_checksum_is_an_error(loader: Loader) -> None:
    loader.replay.add_fault("bad_checksum", path_prefix="/data/spot/daily/klines/BTCUSDT/1m/")
    run = loader.run(loader.env(time_range="2020-01-01/2020-01-02", source="archive"))
    assert run.rc == 1, run.explain()
    message = run.terminal.error_message
    assert re.match(
        r"checksum mismatch for http://\S+/BTCUSDT-1m-2020-01-01\.zip: \.CHECKSUM says sha256 [0-9a-f]{64}, "
        r"downloaded file has dd579c62[0-9a-f]{56}$",
        message,
    ), message
    records, eos = read_topic(loader.broker, run.topic, timeout=5)
    assert records == [] and eos == {}


@pytest.mark.parametrize("source", ["rest", "auto"])
def test_an_exchange_gap_is_loaded_around_and_reported(loader: Loader, source: str) -> None:
    start = 1_577_872_800_000  # 2020-01-01T10:00:00Z
    loader.replay.add_fault("gap", gap_start_ms=start, gap_end_ms=start + 3 * 60_000, symbol="BTCUSDT", interval="1m")
    run = loader.run(loader.env(time_range="2020-01-01/2020-01-02", source=source))
    assert run.rc == 0, run.explain()
    assert run.terminal.records_written == 1437
    gaps = run.terminal.extra["gaps"]
    assert [(g["first"], g["last"], g["count"], g["unit"]) for g in gaps] == [
        (start, start + 2 * 60_000, 3, "open_time_ms")
    ]
    assert gaps[0]["confirmed_by"] == ("rest_response" if source == "rest" else "rest_range")
    records, eos = read_topic(loader.broker, run.topic)
    assert eos == {0: 1437} and len(records) == 1437


def test_gaps_fail_names_every_missing_range(loader: Loader) -> None:
    a, b = 1_577_872_800_000, 1_577_908_800_000  # 10:00 and 20:00
    for start in (a, b):
        loader.replay.add_fault("gap", gap_start_ms=start, gap_end_ms=start + 3 * 60_000, symbol="BTCUSDT")
    run = loader.run(loader.env(time_range="2020-01-01/2020-01-02", GAPS="fail"))
    assert run.rc == 1, run.explain()
    assert run.terminal.error_message == (
        "exchange gaps in BTCUSDT api_candles_1m (GAPS=fail): 2020-01-01 10:00-10:02 UTC (3 candles); "
        "2020-01-01 20:00-20:02 UTC (3 candles)"
    )
    _records, eos = read_topic(loader.broker, run.topic, timeout=5)
    assert eos == {}  # no end-of-stream marker after a failure: the sink cannot finish


# -- stop -------------------------------------------------------------------------------------


def test_stop_mid_load_ends_the_loader_quickly(loader: Loader) -> None:
    loader.replay.add_fault("delay", delay_seconds=3, path_prefix="/api/v3/klines")  # every page is slow
    env = loader.env(time_range="2020-01-01/2020-01-04")
    proc = loader.start(env)
    deadline = time.monotonic() + 20
    while loader.replay.stats()["requests"].get("/api/v3/klines", 0) < 2:  # inside the 2nd slow page
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    sent = send_stop(loader.broker, env["QUEUE_ID"])
    run = loader.finish(proc, env, timeout=10)
    latency = run.ended - sent
    assert run.rc == 3, run.explain()
    assert latency < 5, latency
    assert run.terminal.status is Status.INTERRUPTED
    assert "stop command received (reason: test stop)" in run.terminal.message
    MEASURED["stop latency mid-load (s)"] = round(latency, 2)


def test_stop_sent_before_the_loader_started(loader: Loader) -> None:
    created = datetime.now(UTC)
    env = loader.env(time_range="2020-01-01/2020-01-02", created_at=created)
    send_stop(loader.broker, env["QUEUE_ID"])
    run = loader.run(env, timeout=20)
    assert run.rc == 3, run.explain()
    assert run.terminal.status is Status.INTERRUPTED
    assert loader.replay.stats()["total_requests"] == 0
    assert run.seconds < 10


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [("TIME_RANGE", "2020-01-02/2020-01-01"), ("TYPE", "api_candles_7m"), ("SYMBOL", "btc/usdt")],
)
def test_bad_configuration_exits_2_naming_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "QUEUE_ID": "wf-btcusdt-api_candles_1m-20200101-abcdef",
        "SYMBOL": "BTCUSDT",
        "TYPE": "api_candles_1m",
        "TIME_RANGE": "2020-01-01/2020-01-02",
        "KAFKA_TOPIC": "t",
        "TELEMETRY_PRODUCER_ID": "loader__abcdef",
        "QUEUE_CREATED_AT": "2020-01-01T00:00:00Z",
        variable: value,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "streamforge_workers.loader"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{variable}:" in proc.stderr, proc.stderr


def test_help_needs_no_environment() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streamforge_workers.loader", "--help"],
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0 and "TIME_RANGE" in proc.stdout and "LOADER_SOURCE" in proc.stdout


def test_a_missing_topic_is_an_error_not_created(loader: Loader) -> None:
    env = loader.env(time_range="2020-01-01/2020-01-02")
    env["KAFKA_TOPIC"] = f"missing-{uuid.uuid4().hex[:8]}"
    run = loader.run(env)
    assert run.rc == 1, run.explain()
    assert run.terminal.error_message.startswith(f"Kafka topic {env['KAFKA_TOPIC']!r} is not available")
    assert env["KAFKA_TOPIC"] not in loader.broker.admin().list_topics(timeout=10).topics
    assert loader.replay.stats()["total_requests"] == 0  # checked before any download
