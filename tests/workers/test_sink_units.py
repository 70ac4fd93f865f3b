"""The sink's pure parts: the restart-proof ledger and the ArangoDB retry policy (no infrastructure)."""

from __future__ import annotations

import logging

import pytest
import requests
from arango.exceptions import ArangoServerError, DocumentInsertError
from arango.request import Request
from arango.response import Response
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from streamforge.contracts.config import SinkSettings
from streamforge.contracts.record_codec import RecordCodec
from streamforge.contracts.records import candles_from_csv
from streamforge_workers.runtime.worker import Interrupted
from streamforge_workers.sink.arango_writer import (
    ArangoUnavailable,
    ArangoWriteError,
    ArangoWriter,
    is_transient,
)
from streamforge_workers.sink.http_client import SinkHTTPClient
from streamforge_workers.sink.ledger import Ledger, LedgerError, parse_metadata

LOG = logging.getLogger("test")
# Two real BTCUSDT 1m candles of 2020-01-01 (data.binance.vision spot archive rows).
CANDLE_ROWS = [
    "1577836800000,7195.24,7196.25,7183.14,7186.68,51.642812,1577836859999,371233.51835535,493,19.59823,140888.41428273,0",
    "1577836860000,7187.67,7188.06,7182.2,7184.03,7.248148,1577836919999,52080.1277878,135,2.031772,14599.21192429,0",
]
TOPIC = "wf-x-data"


def fresh(partitions: int = 2) -> Ledger:
    return Ledger.from_committed(TOPIC, [TopicPartition(TOPIC, p, -1001) for p in range(partitions)], LOG)


def test_counts_advance_only_with_commits_and_survive_a_restart() -> None:
    ledger = fresh()
    for offset in range(5):
        ledger.add_record(0, offset)
    ledger.add_record(1, 0)
    assert (ledger.written, ledger.pending) == (0, 6)
    commits = {tp.partition: tp for tp in ledger.pending_commits()}
    assert commits[0].offset == 5 and parse_metadata(commits[0].metadata) == (5, None)
    ledger.mark_committed()
    assert (ledger.written, ledger.pending, ledger.pending_commits()) == (6, 0, [])

    # The process dies during the next batch: its records are written but not committed.
    ledger.add_record(1, 1)
    ledger.add_eos(0, 5, records=8)
    in_flight = {tp.partition: tp for tp in ledger.pending_commits()}
    assert parse_metadata(in_flight[0].metadata) == (5, 8)

    # A new process resumes from what IS committed (partition 1 at offset 1, one record)...
    committed = [commits[0], commits[1]]
    resumed = Ledger.from_committed(TOPIC, committed, LOG)
    assert resumed.written == 6
    assert [(tp.partition, tp.offset) for tp in resumed.start_positions()] == [(0, 5), (1, 1)]
    assert not resumed.accepts(1, 0)  # already counted
    # ...re-reads the lost batch and counts it once.
    resumed.add_record(1, 1)
    resumed.add_eos(0, 5, records=8)
    resumed.add_record(1, 2)
    resumed.add_eos(1, 3, records=8)
    resumed.mark_committed()
    assert resumed.all_finished and resumed.final_total() == 8
    # A partition whose marker is committed is not read again by a later process.
    done = Ledger.from_committed(TOPIC, _commits_of(resumed), LOG)
    assert done.all_finished and done.start_positions() == [] and done.final_total() == 8


def test_a_batch_handed_over_counts_only_once_its_commit_is_made() -> None:
    ledger = fresh(1)
    for offset in range(3):
        ledger.add_record(0, offset)
    records, commits = ledger.hand_over()
    assert records == 3 and commits[0].offset == 3 and parse_metadata(commits[0].metadata) == (3, None)
    # The next batch is read while the first one is written; one batch is handed over at a time.
    ledger.add_records(0, 2, next_offset=5)
    ledger.add_eos(0, 5, records=5)
    assert (ledger.written, ledger.in_flight, ledger.pending) == (0, 3, 2)
    assert ledger.all_eos_seen and not ledger.all_finished
    assert not ledger.accepts(0, 4) and not ledger.accepts(0, 6)
    with pytest.raises(RuntimeError, match="not committed yet"):
        ledger.hand_over()
    # A process that dies now resumes from the last commit: nothing of this topic counted yet.
    assert Ledger.from_committed(TOPIC, [TopicPartition(TOPIC, 0, -1001)], LOG).written == 0

    ledger.handed_over_committed()
    assert (ledger.written, ledger.in_flight, ledger.pending) == (3, 0, 2)
    records, commits = ledger.hand_over()
    # The second commit counts both batches and carries the marker.
    assert records == 2 and commits[0].offset == 6 and parse_metadata(commits[0].metadata) == (5, 5)
    ledger.handed_over_committed()
    assert ledger.all_finished and ledger.final_total() == 5
    assert ledger.hand_over() == (0, [])  # nothing left to hand over


def _commits_of(ledger: Ledger) -> list[TopicPartition]:
    return [
        TopicPartition(TOPIC, s.partition, s.committed_offset, metadata=s.metadata()) for s in ledger.states.values()
    ]


def test_commit_without_our_metadata_rereads_the_partition() -> None:
    foreign = [TopicPartition(TOPIC, 0, 40, metadata=""), TopicPartition(TOPIC, 1, 7, metadata="{")]
    ledger = Ledger.from_committed(TOPIC, foreign, LOG)
    assert ledger.written == 0
    assert [tp.offset for tp in ledger.start_positions()] == [OFFSET_BEGINNING, OFFSET_BEGINNING]


def test_records_after_the_marker_are_not_taken() -> None:
    ledger = fresh(1)
    ledger.add_record(0, 0)
    ledger.add_eos(0, 1, records=1)
    assert not ledger.accepts(0, 2)


def test_total_must_match_the_marker() -> None:
    ledger = fresh(2)
    ledger.add_record(0, 0)
    ledger.add_eos(0, 1, records=3)
    ledger.add_eos(1, 0, records=3)
    ledger.mark_committed()
    with pytest.raises(LedgerError, match=r"wrote 1 records .* announces 3"):
        ledger.final_total()


def test_markers_must_agree() -> None:
    ledger = fresh(2)
    ledger.add_eos(0, 0, records=0)
    ledger.add_eos(1, 0, records=1)
    ledger.mark_committed()
    with pytest.raises(LedgerError, match="disagree"):
        ledger.final_total()


@pytest.mark.parametrize("text", [None, "", "x", "[]", '{"v":2,"written":1}', '{"v":1,"written":-1}'])
def test_foreign_metadata_is_not_trusted(text: str | None) -> None:
    assert parse_metadata(text) is None


# --- ArangoDB retries -----------------------------------------------------------------------


def writer(sleeps: list[float], **env: str) -> ArangoWriter:
    settings = SinkSettings.model_validate(
        {
            "kafka_bootstrap_servers": "127.0.0.1:9",
            "queue_id": "q",
            "symbol": "BTCUSDT",
            "type": "api_candles_1m",
            "telemetry_producer_id": "arango-candles__abc123",
            "queue_created_at": "2024-08-01T00:00:00Z",
            "kafka_topic": "t",
            "collection_name": "c",
            "arango_url": "http://127.0.0.1:9",
            **env,
        }
    )
    return ArangoWriter(settings, component="arango-candles", sleep=sleeps.append, log=LOG)


def test_transient_failures_back_off_exponentially_then_give_up() -> None:
    sleeps: list[float] = []
    w = writer(sleeps, arango_retry_attempts="4", arango_retry_wait_seconds="0.5")
    calls = []

    def refused() -> None:
        calls.append(1)
        raise requests.ConnectionError("refused")

    with pytest.raises(ArangoUnavailable, match="in 4 attempts"):
        w._call("write 3 documents", refused)
    assert (len(calls), sleeps) == (4, [0.5, 1.0, 2.0])


def test_recovers_when_arango_comes_back() -> None:
    sleeps: list[float] = []
    outcomes = [ConnectionAbortedError("Can't connect"), None]

    def flaky() -> str:
        if (error := outcomes.pop(0)) is not None:
            raise error
        return "ok"

    assert writer(sleeps)._call("write", flaky) == "ok"
    assert sleeps == [1.0]


def test_non_transient_errors_are_not_retried() -> None:
    sleeps: list[float] = []
    with pytest.raises(ArangoWriteError, match="could not write: boom"):
        writer(sleeps)._call("write", lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert sleeps == []


def test_stop_during_backoff_interrupts() -> None:
    def interrupting_sleep(_: float) -> None:
        raise Interrupted("stop command received")

    w = writer([])
    w._sleep = interrupting_sleep
    with pytest.raises(Interrupted):
        w._call("write", lambda: (_ for _ in ()).throw(requests.Timeout("slow")))


def server_error(http: int, error_num: int, message: str = "x") -> ArangoServerError:
    resp = Response("post", "http://arango/_api/document/c", {}, http, "status", "")
    resp.error_code, resp.error_message = error_num, message
    return DocumentInsertError(resp, Request(method="post", endpoint="/_api/document/c"))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (server_error(503, 503), True),
        (server_error(500, 4), True),
        (server_error(409, 1200), True),  # write-write conflict
        (server_error(400, 1221), False),  # illegal key
        (server_error(409, 1210), False),  # unique constraint
        (requests.ReadTimeout("slow"), True),
        (ConnectionAbortedError("Can't connect to host(s)"), True),
        (ValueError("bug"), False),
    ],
)
def test_transient_classification(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def real_writer(arango_endpoint, arango_db, collection: str) -> ArangoWriter:
    w = writer(
        [],
        arango_url=arango_endpoint.url,
        arango_db=arango_db.name,
        arango_user=arango_endpoint.username,
        arango_password=arango_endpoint.password,
        collection_name=collection,
    )
    w.setup()
    return w


def test_batches_replace_on_key_and_store_the_contract_documents(arango_endpoint, arango_db) -> None:
    codec = RecordCodec("candles", "BTCUSDT", "1m", "api_candles_1m")
    candles = list(candles_from_csv("BTCUSDT", "1m", CANDLE_ROWS))
    w = real_writer(arango_endpoint, arango_db, "c")
    w.write([codec.decode(c.to_bytes()) for c in candles])
    w.write([codec.decode(c.to_bytes()) for c in candles[:2]])  # a replayed batch: same documents
    stored = {d["_key"]: d for d in arango_db.collection("c").all()}
    assert {k: {f: v for f, v in d.items() if f not in ("_id", "_rev")} for k, d in stored.items()} == {
        c.key: c.to_document() for c in candles
    }


def test_a_refused_document_fails_the_whole_batch(arango_endpoint, arango_db) -> None:
    codec = RecordCodec("candles", "BTCUSDT", "1m", "api_candles_1m")
    good, bad = (codec.decode(c.to_bytes()) for c in candles_from_csv("BTCUSDT", "1m", CANDLE_ROWS[:2]))
    bad.key = "not a valid key/"
    w = real_writer(arango_endpoint, arango_db, "c")
    with pytest.raises(ArangoWriteError, match="illegal document key"):
        w.write([good, bad])
    assert arango_db.collection("c").count() == 0  # all or nothing: a retry or replay writes it again


def test_sink_sessions_resolve_proxies_and_ca_bundle_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "arango.internal")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/streamforge-ca.pem")
    client = SinkHTTPClient(request_timeout=5, retry_attempts=0)
    proxied = client.create_session("http://db.example:8529")
    direct = client.create_session("http://arango.internal:8529")
    assert proxied.proxies.get("http") == "http://proxy.example:3128"
    assert "http" not in direct.proxies  # no_proxy covers it
    assert proxied.verify == direct.verify == "/etc/ssl/streamforge-ca.pem"
    assert not proxied.trust_env and not direct.trust_env  # nothing is read from os.environ per request
