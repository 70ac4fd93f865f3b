"""The ArangoDB sinks (`python -m streamforge_workers.sink`) as real processes.

Real Kafka (kafka_broker), the ArangoDB-compatible test server (arango_endpoint / arango_db)
and the real Binance files of shared/data: the topic is fed here with the contracts parsers and
EndOfStream markers, exactly as the loader writes it.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from arango.database import StandardDatabase
from confluent_kafka import Consumer, Producer, TopicPartition

from streamforge.contracts.messages import Command, CommandName, Event, Status, parse_event
from streamforge.contracts.records import Candle, EndOfStream, Trade, candles_from_csv, trades_from_csv
from streamforge.stack.paths import SHARED_DATA
from streamforge.stack.ports import free_port

pytestmark = pytest.mark.kafka

BINANCE = SHARED_DATA / "binance"
CANDLES_ZIP = BINANCE / "spot" / "klines" / "1m" / "BTCUSDT-1m-2020-01-01.zip"
TRADES_ZIP = BINANCE / "futures-cm" / "aggTrades" / "BTCUSD_PERP-aggTrades-2026-05-08.zip"
TRADES_IN_DAY = 105_280
SINK_TIMEOUT = 90.0


# --- data ---------------------------------------------------------------------------------------


def _zip_lines(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        (member,) = archive.namelist()
        with archive.open(member) as raw:
            return io.TextIOWrapper(raw, encoding="utf-8").read().splitlines()


@cache
def day_candles() -> tuple[Candle, ...]:
    return tuple(candles_from_csv("BTCUSDT", "1m", _zip_lines(CANDLES_ZIP)))


@cache
def day_trades() -> tuple[Trade, ...]:
    return tuple(trades_from_csv("BTCUSD_PERP", _zip_lines(TRADES_ZIP)))


def produce(
    kafka_broker: Any,
    topic: str,
    records: Iterable[Candle | Trade | bytes],
    *,
    partitions: int = 1,
    eos: int | None = -1,
) -> int:
    """Write records as the loader does (key = record key), then an EOS marker per partition.

    Raw bytes are written as-is (malformed records); `eos=-1` announces the number of records,
    None writes no marker.
    """
    producer = Producer(
        kafka_broker.client_config(enable_idempotence=True, acks="all", linger_ms=20, batch_size=262_144)
    )
    count = 0
    for i, record in enumerate(records):
        if isinstance(record, bytes):
            message: dict[str, Any] = {
                "value": record,
                "key": f"raw-{i}".encode(),
                "partition": i % partitions,
            }
        else:
            message = {"value": record.to_bytes(), "key": record.key.encode()}
        while True:
            try:
                producer.produce(topic, **message)
                break
            except BufferError:  # local queue full (e.g. while the producer id is acquired)
                producer.poll(0.1)
        count += 1
    if eos is not None:
        marker = EndOfStream(records=count if eos == -1 else eos)
        for partition in range(partitions):
            producer.produce(topic, value=marker.to_bytes(), partition=partition, headers=EndOfStream.headers())
    assert producer.flush(30) == 0
    return count


# --- the sink process -----------------------------------------------------------------------------


@dataclass
class Sink:
    """One sink process, its env and the events of its queue."""

    env: dict[str, str]
    log_path: Path
    kafka_broker: Any
    proc: subprocess.Popen[bytes] | None = None
    max_rss_kb: int = 0
    wall_seconds: float = 0.0
    _started: float = 0.0
    _started_at: float = 0.0  # wall clock, to tell this process's events from an earlier one's

    @property
    def queue_id(self) -> str:
        return self.env["QUEUE_ID"]

    def start(self) -> Sink:
        self._started, self._started_at = time.monotonic(), time.time()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamforge_workers.sink"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait(self, timeout: float = SINK_TIMEOUT) -> int:
        """Exit code. Samples the process's own peak RSS (VmHWM) while it runs: rusage of a
        child would also count the pytest pages it shared before exec."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            self.max_rss_kb = max(self.max_rss_kb, _vm_hwm_kb(self.proc.pid))
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"sink {self.queue_id} still running after {timeout}s; log:\n{self.log_tail()}")
            time.sleep(0.05)
        self.wall_seconds = time.monotonic() - self._started
        return self.proc.returncode

    def run(self, timeout: float = SINK_TIMEOUT) -> int:
        return self.start().wait(timeout)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def events(self, timeout: float = 15.0) -> list[Event]:
        """This process's events on queue-events, read up to its terminal event."""
        consumer = Consumer(
            self.kafka_broker.client_config(group_id=f"test-{uuid.uuid4().hex}", enable_auto_commit=False)
        )
        try:
            meta = consumer.list_topics("queue-events", timeout=10).topics["queue-events"]
            consumer.assign([TopicPartition("queue-events", p, 0) for p in meta.partitions])
            events: list[Event] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not any(e.is_terminal for e in events):
                for msg in consumer.consume(500, timeout=0.2):
                    if not msg.error() and msg.key() == self.queue_id.encode():
                        event = parse_event(msg.value())
                        if event.timestamp >= self._started_at:
                            events.append(event)
            return events
        finally:
            consumer.close()

    def terminal(self) -> Event:
        terminal = [e for e in self.events() if e.is_terminal]
        assert len(terminal) == 1, f"expected one terminal event, got {terminal}; log:\n{self.log_tail()}"
        return terminal[0]


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    except OSError:  # exited meanwhile
        return 0


def sink_env(
    kafka_broker: Any,
    arango_endpoint: Any,
    db_name: str,
    topic: str,
    collection: str,
    *,
    data_type: str = "api_candles_1m",
    symbol: str = "BTCUSDT",
    protocol: str = "PLAINTEXT",
    **extra: str,
) -> dict[str, str]:
    queue_id = f"wf-test-sink-{uuid.uuid4().hex[:10]}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **kafka_broker.env(protocol),
        "QUEUE_ID": queue_id,
        "SYMBOL": symbol,
        "TYPE": data_type,
        "KAFKA_TOPIC": topic,
        "COLLECTION_NAME": collection,
        "TELEMETRY_PRODUCER_ID": f"sink__{queue_id[-6:]}",
        "QUEUE_CREATED_AT": datetime.now(UTC).isoformat(),
        "ARANGO_URL": arango_endpoint.url,
        "ARANGO_DB": db_name,
        "ARANGO_USER": arango_endpoint.username,
        "ARANGO_PASSWORD": arango_endpoint.password,
        "METRICS_PORT": "0",
        "LOG_LEVEL": "INFO",
    }
    env.update({k.upper(): str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def make_sink(kafka_broker: Any, arango_endpoint: Any, arango_db: StandardDatabase, tmp_path: Path):
    def make(topic: str, collection: str, *, env: dict[str, str] | None = None, **kwargs: Any) -> Sink:
        sink_vars = env or sink_env(kafka_broker, arango_endpoint, arango_db.name, topic, collection, **kwargs)
        return Sink(sink_vars, tmp_path / f"{sink_vars['QUEUE_ID']}.log", kafka_broker)

    return make


def dump(db: StandardDatabase, collection: str) -> dict[str, dict[str, Any]]:
    """Every document by _key, without _rev (a replace gives a new revision, same content)."""
    docs = list(db.aql.execute("FOR d IN @@c RETURN d", bind_vars={"@c": collection}, batch_size=10_000))
    by_key = {d["_key"]: {k: v for k, v in d.items() if k != "_rev"} for d in docs}
    assert len(by_key) == len(docs)
    return by_key


def _revisions(db: StandardDatabase, collection: str) -> dict[str, str]:
    query = "FOR d IN @@c RETURN {k: d._key, r: d._rev}"
    return {d["k"]: d["r"] for d in db.aql.execute(query, bind_vars={"@c": collection}, batch_size=10_000)}


def expected_docs(records: Sequence[Candle | Trade], collection: str) -> dict[str, dict[str, Any]]:
    return {r.key: {**r.to_document(), "_id": f"{collection}/{r.key}"} for r in records}


def committed(kafka_broker: Any, group: str, topic: str, partitions: int = 1) -> list[TopicPartition]:
    consumer = Consumer(kafka_broker.client_config(group_id=group, enable_auto_commit=False))
    try:
        return consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()


def send_command(kafka_broker: Any, queue_id: str, command: CommandName = CommandName.STOP) -> None:
    producer = Producer(kafka_broker.client_config())
    cmd = Command(command=command, queue_id=queue_id, reason="test")
    producer.produce("queue-control", value=cmd.to_bytes(), key=cmd.kafka_key())
    assert producer.flush(10) == 0


def wait_for_count(db: StandardDatabase, collection: str, at_least: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.has_collection(collection) and (n := db.collection(collection).count()) >= at_least:
            return n
        time.sleep(0.05)
    pytest.fail(f"{collection} did not reach {at_least} documents in {timeout}s")


# --- tests --------------------------------------------------------------------------------------


def test_candles_day_then_replays_converge(kafka_broker, kafka_topic, arango_db, make_sink) -> None:
    topic = kafka_topic()
    candles = day_candles()
    assert len(candles) == 1440
    produce(kafka_broker, topic, candles)
    collection = "btcusdt_api_candles_1m_2020_01_01"

    first = make_sink(topic, collection)
    assert first.run() == 0, first.log_tail()
    event = first.terminal()
    assert (event.status, event.records_written, event.component) == (Status.FINISHED, 1440, "arango-candles")
    stored = dump(arango_db, collection)
    assert stored == expected_docs(candles, collection)
    assert stored["BTCUSDT_1m_1577836800000"]["close_time"] == 1577836859999

    # The same queue again (e.g. a restart after the last commit, before `finished` went out):
    # the count comes from the commit metadata alone, nothing is re-read or re-written.
    revisions = _revisions(arango_db, collection)
    same_group = make_sink(topic, collection, env=first.env)
    assert same_group.run() == 0, same_group.log_tail()
    assert same_group.terminal().records_written == 1440
    assert _revisions(arango_db, collection) == revisions

    # Two more runs over the same topic with fresh groups: same documents, no duplicates.
    for _ in range(2):
        again = make_sink(topic, collection)
        assert again.run() == 0, again.log_tail()
        assert again.terminal().records_written == 1440
        assert dump(arango_db, collection) == stored


def test_trades_day_three_partitions(kafka_broker, kafka_topic, arango_db, make_sink, record_property) -> None:
    topic = kafka_topic(partitions=3)
    trades = day_trades()
    assert len(trades) == TRADES_IN_DAY
    produce(kafka_broker, topic, trades, partitions=3)
    collection = "btcusd_perp_api_trades_2026_05_08"

    sink = make_sink(topic, collection, data_type="api_trades", symbol="BTCUSD_PERP")
    assert sink.run() == 0, sink.log_tail()
    event = sink.terminal()
    assert (event.status, event.records_written, event.component) == (
        Status.FINISHED,
        TRADES_IN_DAY,
        "arango-trades",
    )
    assert arango_db.collection(collection).count() == TRADES_IN_DAY
    assert dump(arango_db, collection) == expected_docs(trades, collection)
    loading = [e for e in sink.events() if e.status is Status.LOADING]
    rate = TRADES_IN_DAY / sink.wall_seconds
    record_property("sink_trades_docs_per_s", round(rate))
    record_property("sink_peak_rss_mb", round(sink.max_rss_kb / 1024, 1))
    print(
        f"\nsink: {TRADES_IN_DAY} trades in {sink.wall_seconds:.1f}s (process wall time) = "
        f"{rate:.0f} docs/s, peak RSS {sink.max_rss_kb / 1024:.1f} MB, {len(loading)} loading events"
    )


@pytest.mark.parametrize("overlap", ["false", "true"], ids=["write-inline", "write-overlapped"])
def test_kill_9_then_restart_loses_and_duplicates_nothing(
    kafka_broker, kafka_topic, arango_db, make_sink, overlap
) -> None:
    topic = kafka_topic(partitions=3)
    trades = day_trades()[:30_000]
    produce(kafka_broker, topic, trades, partitions=3)
    collection = "btcusd_perp_api_trades_2026_05_08"
    first = make_sink(
        topic,
        collection,
        data_type="api_trades",
        symbol="BTCUSD_PERP",
        arango_batch_size="100",
        arango_write_overlap=overlap,
    ).start()
    wait_for_count(arango_db, collection, 5_000)
    first.proc.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    group = f"streamforge-sink-{first.queue_id}"
    progress = committed(kafka_broker, group, topic, 3)
    assert sum(tp.offset for tp in progress if tp.offset > 0) > 0, "nothing was committed before the kill"
    assert arango_db.collection(collection).count() < len(trades), "killed too late to prove anything"

    # The same queue (same group) again: resumes from the commits, counts the whole topic.
    second = make_sink(topic, collection, env=first.env)
    assert second.run() == 0, second.log_tail()
    terminal = second.terminal()
    assert (terminal.status, terminal.records_written) == (Status.FINISHED, len(trades))
    assert dump(arango_db, collection) == expected_docs(trades, collection)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b'{"symbol": "BTCUSDT", "interval": "1m", "open_time": 15778', id="invalid-json"),
        pytest.param("close_time_in_us", id="close-time-in-microseconds"),
    ],
)
def test_malformed_record_fails_at_its_offset(kafka_broker, kafka_topic, arango_db, make_sink, bad) -> None:
    candles = day_candles()[:30]
    if bad == "close_time_in_us":
        fields = candles[10].model_dump()
        fields["close_time"] = fields["close_time"] * 1000
        bad = json.dumps(fields).encode()
    topic = kafka_topic()
    produce(kafka_broker, topic, [*candles[:10], bad, *candles[11:]], eos=30)
    collection = "btcusdt_api_candles_1m_2020_01_01"

    sink = make_sink(topic, collection, arango_batch_size="4")
    assert sink.run() == 1, sink.log_tail()
    event = sink.terminal()
    assert event.status is Status.ERROR
    assert f"topic {topic} partition 0 offset 10" in (event.error_message or ""), event.error_message
    # The records before it are stored and committed; nothing at or past it is.
    (tp,) = committed(kafka_broker, f"streamforge-sink-{sink.queue_id}", topic)
    assert tp.offset == 10
    assert sorted(dump(arango_db, collection)) == sorted(c.key for c in candles[:10])


def test_error_event_counts_every_record_stored_before_a_bad_one(
    kafka_broker, kafka_topic, arango_db, make_sink
) -> None:
    """Batches of 7 store 14 records before the bad one at offset 20 is read; the 6 between are
    stored when the sink refuses it, and its `error` event must say 20, not the last batch's 14."""
    candles = day_candles()[:30]
    topic = kafka_topic()
    produce(kafka_broker, topic, [*candles[:20], b"not json", *candles[21:]], eos=30)
    collection = "btcusdt_api_candles_1m_2020_01_01"

    sink = make_sink(topic, collection, arango_batch_size="7")
    assert sink.run() == 1, sink.log_tail()
    event = sink.terminal()
    assert event.status is Status.ERROR and "offset 20" in (event.error_message or "")
    assert event.records_written == 20
    assert len(dump(arango_db, collection)) == 20


def test_arango_unreachable_retries_then_fails(kafka_broker, kafka_topic, make_sink) -> None:
    topic = kafka_topic()
    produce(kafka_broker, topic, day_candles()[:5])
    with_closed_port = make_sink(
        topic,
        "btcusdt_api_candles_1m_2020_01_01",
        arango_url="http://127.0.0.1:9",  # discard port: nothing listens there
        arango_retry_attempts="3",
        arango_retry_wait_seconds="0.1",
    )
    started = time.monotonic()
    assert with_closed_port.run(timeout=30) == 1, with_closed_port.log_tail()
    assert time.monotonic() - started < 20
    event = with_closed_port.terminal()
    assert event.status is Status.ERROR
    assert "unavailable" in event.error_message and "3 attempts" in event.error_message, event.error_message
    retries = [line for line in with_closed_port.log_path.read_text().splitlines() if "retrying" in line]
    assert len(retries) == 2, with_closed_port.log_tail()


def test_missing_database_is_a_clear_error(kafka_broker, kafka_topic, arango_endpoint, tmp_path) -> None:
    topic = kafka_topic()
    env = sink_env(kafka_broker, arango_endpoint, "sf_no_such_db", topic, "btcusdt_api_candles_1m_2020_01_01")
    sink = Sink(env, tmp_path / "sink.log", kafka_broker)
    assert sink.run(timeout=30) == 1, sink.log_tail()
    assert "database 'sf_no_such_db' does not exist" in (sink.terminal().error_message or "")


def test_stop_mid_consume_and_before_start(kafka_broker, kafka_topic, arango_db, make_sink) -> None:
    # No end-of-stream marker: the sink writes five full batches, holds 50 records in an open
    # batch (latency far away) and waits for more, mid-stream.
    topic = kafka_topic()
    produce(kafka_broker, topic, day_candles()[:550], eos=None)
    collection = "btcusdt_api_candles_1m_2020_01_01"
    port = free_port()
    running = make_sink(
        topic,
        collection,
        arango_batch_size="100",
        batch_max_latency_ms="600000",
        metrics_port=str(port),
        metrics_host="127.0.0.1",
    ).start()

    early_stop = make_sink(topic, "early_stop")
    send_command(kafka_broker, early_stop.queue_id)  # before that sink even exists
    early_stop.start()

    wait_for_count(arango_db, collection, 500)
    metrics = _scrape(port, 'streamforge_sink_records_written_total{component="arango-candles"} 500.0')
    assert 'streamforge_sink_batches_total{component="arango-candles"} 5.0' in metrics
    assert 'streamforge_sink_batch_seconds_count{component="arango-candles"} 5.0' in metrics
    assert 'streamforge_sink_arango_retries_total{component="arango-candles"} 0.0' in metrics
    send_command(kafka_broker, running.queue_id)
    stop_sent = time.monotonic()
    assert running.wait(timeout=10) == 3, running.log_tail()
    assert time.monotonic() - stop_sent < 5
    assert running.terminal().status is Status.INTERRUPTED
    # The open batch was neither written nor committed.
    (tp,) = committed(kafka_broker, f"streamforge-sink-{running.queue_id}", topic)
    assert (tp.offset, arango_db.collection(collection).count()) == (500, 500)

    assert early_stop.wait(timeout=20) == 3, early_stop.log_tail()
    assert early_stop.terminal().status is Status.INTERRUPTED
    assert not arango_db.has_collection("early_stop")


def _scrape(port: int, wanted: str, timeout: float = 10) -> str:
    """/metrics once it shows `wanted` (the counters move right after the documents land)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        if wanted in text:
            return text
        time.sleep(0.1)
    pytest.fail(f"{wanted!r} not in /metrics:\n{text}")


def test_eos_count_mismatch_is_an_error(kafka_broker, kafka_topic, arango_db, make_sink) -> None:
    topic = kafka_topic(partitions=2)
    produce(kafka_broker, topic, day_candles()[:10], partitions=2, eos=12)
    sink = make_sink(topic, "btcusdt_api_candles_1m_2020_01_01")
    assert sink.run() == 1, sink.log_tail()
    message = sink.terminal().error_message or ""
    assert "wrote 10 records" in message and "announces 12" in message, message


def test_layout_single_creates_time_index(kafka_broker, kafka_topic, arango_db, make_sink) -> None:
    topic = kafka_topic()
    produce(kafka_broker, topic, day_candles()[:100])
    sink = make_sink(topic, "btcusdt_api_candles_1m", collection_layout="single")
    assert sink.run() == 0, sink.log_tail()
    assert sink.terminal().records_written == 100
    indexes = arango_db.collection("btcusdt_api_candles_1m").indexes()
    persistent = [i for i in indexes if i["type"] == "persistent"]
    assert [i["fields"] for i in persistent] == [["open_time"]], indexes


def test_candles_over_sasl_ssl(kafka_broker, kafka_topic, arango_db, make_sink) -> None:
    topic = kafka_topic(partitions=2)
    produce(kafka_broker, topic, day_candles(), partitions=2)
    collection = "btcusdt_api_candles_1m_2020_01_01"
    sink = make_sink(topic, collection, protocol="SASL_SSL")
    assert sink.run() == 0, sink.log_tail()
    assert sink.terminal().records_written == 1440
    assert dump(arango_db, collection) == expected_docs(day_candles(), collection)
