"""The sink's loop: consume the data topic, validate, batch, write, commit, finish at end of stream.

Consumer: the group `streamforge-sink-<queue_id>` with explicit `assign()` of every partition
(count from the topic's metadata) instead of `subscribe()`: a restarted sink (after kill -9)
starts at once instead of waiting out the dead member's session, and it starts each partition
exactly where its trusted commit says (see ledger.py). Offsets are committed synchronously and
only after the batch they cover is stored, so a crash replays at most two batches (the one
being written and the open one), which the import's replace-on-`_key` turns into the same documents.

Throughput: data records are decoded and counted per run of one partition
(RecordCodec.decode_many, Ledger.add_records); errors, markers and anything with headers go one
by one. A full batch is handed to the writer and committed once stored. With
ARANGO_WRITE_OVERLAP the write runs on a thread while the next batch is read and decoded (one
batch in flight at most; its commit still follows its write, on this thread); without it (the
default) the write is a plain call, which measured cheaper in CPU when the sink and the server
share cores (ARCHITECTURE §4).

Done = the end-of-stream marker is committed on every partition; the total then comes from the
commit metadata (exact across restarts) and must equal the loader's announced count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from typing import Any, NoReturn, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from pydantic import ValidationError

from streamforge.contracts.config import SinkSettings
from streamforge.contracts.kafka_errors import is_fatal, is_partition_eof
from streamforge.contracts.kafka_logging import kafka_client_logger
from streamforge.contracts.record_codec import Document, RecordCodec
from streamforge.contracts.records import EndOfStream, RecordError, is_eos
from streamforge_workers.runtime.worker import FatalError, WorkerContext
from streamforge_workers.sink.ledger import Ledger, LedgerError
from streamforge_workers.sink.metrics import BATCH_SECONDS, BATCHES, RECORDS_WRITTEN, register

T = TypeVar("T")

# Short blocking calls keep `stop` within its 5 s budget.
POLL_TIMEOUT_S = 0.2
KAFKA_CALL_TIMEOUT_S = 2.0
# How long Kafka may stay unreachable (or the topic missing) during setup or a commit.
KAFKA_PATIENCE_S = 30.0
MAX_MESSAGES_PER_POLL = 5000

# Which Kafka errors are fatal is decided by streamforge.contracts.kafka_errors; transient
# ones (coordinator moving, transport, timeouts) are retried for up to KAFKA_PATIENCE_S.


class Writer(Protocol):
    def setup(self) -> None: ...
    def write(self, docs: list[Document]) -> None: ...


@dataclass
class _Write:
    """The batch handed to the writer thread: what to commit once it is stored."""

    future: Future[None]
    records: int
    commits: list[TopicPartition]
    started: float


def consumer_config(settings: SinkSettings) -> dict[str, Any]:
    return settings.kafka_config() | {
        "group.id": f"streamforge-sink-{settings.queue_id}",
        "client.id": settings.telemetry_producer_id,
        # A fresh group reads from the start: the loader may well have finished before the
        # sink started (the original sinks' `latest` silently lost those records).
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        # Bound the prefetch queue: small JSON records, no need for librdkafka's 64 MB default.
        "queued.max.messages.kbytes": 8192,
        "logger": kafka_client_logger(),
    }


class SinkEngine:
    def __init__(
        self,
        ctx: WorkerContext,
        settings: SinkSettings,
        writer: Writer,
        consumer: Consumer,
    ) -> None:
        self._ctx = ctx
        self._settings = settings
        self._writer = writer
        self._consumer = consumer
        self._topic = settings.kafka_topic
        self._component = settings.component.value
        interval = settings.data_type.interval.code if settings.data_type.interval else None
        self._codec = RecordCodec(settings.data_type.kind.value, settings.symbol, interval, settings.type)
        self._batch: list[Document] = []
        self._batch_started: float | None = None
        self._writing: _Write | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sink-writer") if settings.arango_write_overlap else None
        self._latency_s = settings.batch_max_latency_ms / 1000
        self._warned_after_eos: set[int] = set()
        register(self._component)

    # --- entry point ----------------------------------------------------------------------

    def run(self) -> int:
        """Write the whole topic; returns the exact, cross-checked number of records."""
        self._writer.setup()
        partitions = self._partitions()
        committed = self._kafka("read the committed offsets", lambda: self._committed(partitions))
        ledger = Ledger.from_committed(self._topic, committed, self._ctx.log)
        self._ctx.log.info(
            "resuming" if ledger.written else "starting",
            extra={
                "topic": self._topic,
                "partitions": len(partitions),
                "records_committed": ledger.written,
                "unfinished_partitions": ledger.unfinished(),
            },
        )
        if not ledger.all_finished:
            self._consumer.assign(ledger.start_positions())
            try:
                self._consume(ledger)
            finally:
                if self._pool is not None:
                    # Waits for a write still running (after a stop or an error): it is never
                    # committed, the next run writes it again.
                    self._pool.shutdown()
        try:
            return ledger.final_total()
        except LedgerError as exc:
            raise FatalError(str(exc)) from None

    # --- the loop -------------------------------------------------------------------------

    def _consume(self, ledger: Ledger) -> None:
        while not ledger.all_finished:
            self._ctx.check_stop()  # a stop drops the open batch: nothing half-done is committed
            self._commit_written(ledger, wait=False)
            if ledger.all_eos_seen:  # nothing left to read: store and commit the rest
                self._flush(ledger, wait=True)
                continue
            room = self._settings.arango_batch_size - len(self._batch)
            messages = self._consumer.consume(
                num_messages=max(1, min(room, MAX_MESSAGES_PER_POLL)), timeout=self._poll_timeout()
            )
            self._take_all(messages, ledger)
            if self._flush_due(ledger):
                self._flush(ledger)
            self._ctx.progress(ledger.written, f"wrote {ledger.written} records")

    def _poll_timeout(self) -> float:
        if self._batch_started is None:
            return POLL_TIMEOUT_S
        left = self._batch_started + self._latency_s - time.monotonic()
        return min(POLL_TIMEOUT_S, max(0.0, left))

    def _flush_due(self, ledger: Ledger) -> bool:
        if ledger.eos_pending:  # commit a marker promptly: it may be the last thing we wait for
            return True
        if not self._batch:
            return False
        assert self._batch_started is not None
        return (
            len(self._batch) >= self._settings.arango_batch_size
            or time.monotonic() - self._batch_started >= self._latency_s
        )

    def _take_all(self, messages: list[Message], ledger: Ledger) -> None:
        """Take one consume() result: plain data records a run at a time, the rest one by one."""
        n = len(messages)
        errors = list(map(Message.error, messages))
        headers = list(map(Message.headers, messages))
        if errors.count(None) == n and headers.count(None) == n:
            self._take_runs(messages, ledger)
            return
        start = 0
        for i in range(n):
            if errors[i] is not None or headers[i] is not None:
                self._take_runs(messages[start:i], ledger)
                self._take(messages[i], ledger)
                start = i + 1
        self._take_runs(messages[start:], ledger)

    def _take_runs(self, messages: list[Message], ledger: Ledger) -> None:
        """Data records without headers: per run of one partition, one decode and one count."""
        for partition, run in groupby(messages, Message.partition):
            records = list(run)
            # librdkafka delivers a partition in offset order: if the first is new, all are.
            if not ledger.accepts(partition, records[0].offset()):
                for msg in records:
                    self._take(msg, ledger)
                continue
            docs, error = self._codec.decode_many(list(map(Message.value, records)))
            if docs:
                if self._batch_started is None:
                    self._batch_started = time.monotonic()
                self._batch.extend(docs)
                ledger.add_records(partition, len(docs), records[len(docs) - 1].offset() + 1)
            if error is not None:
                self._refuse(records[len(docs)], ledger, str(error))

    def _take(self, msg: Message, ledger: Ledger) -> None:
        err = msg.error()
        if err is not None:
            self._kafka_error(err)
            return
        partition, offset = msg.partition(), msg.offset()
        if not ledger.accepts(partition, offset):
            if ledger.states[partition].eos_seen and partition not in self._warned_after_eos:
                self._warned_after_eos.add(partition)
                self._ctx.log.warning(
                    "message after the end-of-stream marker ignored (loader contract broken?)",
                    extra={"topic": self._topic, "partition": partition, "offset": offset},
                )
            return
        value = msg.value() or b""
        headers = msg.headers()
        if headers is not None and is_eos(headers):
            try:
                eos = EndOfStream.model_validate_json(value)
            except ValidationError as exc:
                self._refuse(msg, ledger, f"malformed end-of-stream marker: {exc.errors()[0]['msg']}")
            ledger.add_eos(partition, offset, eos.records)
            # Nothing after the marker belongs to this run: stop fetching the partition.
            self._consumer.pause([TopicPartition(self._topic, partition)])
            return
        try:
            # The contract's checks, including "this record belongs to this topic's stream".
            doc = self._codec.decode(value)
        except RecordError as exc:
            self._refuse(msg, ledger, str(exc))
        if self._batch_started is None:
            self._batch_started = time.monotonic()
        self._batch.append(doc)
        ledger.add_record(partition, offset)

    def _refuse(self, msg: Message, ledger: Ledger, reason: str) -> NoReturn:
        """Fail on a bad record: store and commit what came before it, never anything past it."""
        where = f"topic {self._topic} partition {msg.partition()} offset {msg.offset()}"
        message = f"invalid record at {where}: {reason}"
        try:
            self._flush(ledger, wait=True)
        except FatalError as exc:
            message += f" (writing the records before it failed too: {exc})"
        self._ctx.count(ledger.written)  # the `error` event reports exactly what is stored
        raise FatalError(message)

    def _kafka_error(self, err: KafkaError) -> None:
        if is_partition_eof(err):
            return
        if is_fatal(err):
            raise FatalError(f"Kafka error while consuming {self._topic}: {err.str()}")
        # Transient (broker restart, network): librdkafka reconnects by itself.
        self._ctx.log.warning("Kafka consumer error", extra={"topic": self._topic, "error": err.str()})

    # --- writing and committing ---------------------------------------------------------------

    def _flush(self, ledger: Ledger, *, wait: bool = False) -> None:
        """Hand the open batch to the writer thread (after committing the one before it)."""
        self._commit_written(ledger, wait=True)
        docs = self._batch
        if docs or ledger.pending_commits():
            records, commits = ledger.hand_over()
            self._batch, self._batch_started = [], None
            self._writing = _Write(self._submit(docs), records, commits, time.monotonic())
        if wait:
            self._commit_written(ledger, wait=True)

    def _submit(self, docs: list[Document]) -> Future[None]:
        """Start storing `docs`: on the writer thread, or here and now (then the future is done)."""
        if self._pool is not None:
            return self._pool.submit(self._writer.write, docs)
        done: Future[None] = Future()
        try:
            self._writer.write(docs)
        except Exception as exc:  # raised where the threaded write raises it: at its commit
            done.set_exception(exc)
        else:
            done.set_result(None)
        return done

    def _commit_written(self, ledger: Ledger, *, wait: bool) -> None:
        """Commit the batch handed over once it is stored (raises what the write raised)."""
        writing = self._writing
        if writing is None or not (wait or writing.future.done()):
            return
        self._writing = None
        writing.future.result()
        if writing.commits:
            self._kafka("commit offsets", lambda: self._commit(writing.commits))
        ledger.handed_over_committed()
        seconds = time.monotonic() - writing.started
        if writing.records:
            BATCHES.labels(self._component).inc()
            BATCH_SECONDS.labels(self._component).observe(seconds)
            RECORDS_WRITTEN.labels(self._component).inc(writing.records)
        self._ctx.log.debug(
            "batch committed", extra={"records": writing.records, "written": ledger.written, "seconds": seconds}
        )

    def _committed(self, partitions: list[int]) -> list[TopicPartition]:
        tps = self._consumer.committed(
            [TopicPartition(self._topic, p) for p in partitions], timeout=KAFKA_CALL_TIMEOUT_S
        )
        failed = [tp for tp in tps if tp.error is not None]
        if failed:
            raise KafkaException(failed[0].error)
        return tps

    def _commit(self, offsets: list[TopicPartition]) -> None:
        result = self._consumer.commit(offsets=offsets, asynchronous=False) or []
        failed = [tp for tp in result if tp.error is not None]
        if failed:
            raise KafkaException(failed[0].error)

    # --- Kafka calls that may meet a broker that is briefly away -----------------------------

    def _partitions(self) -> list[int]:
        def lookup() -> list[int]:
            metadata = self._consumer.list_topics(self._topic, timeout=KAFKA_CALL_TIMEOUT_S)
            topic = metadata.topics.get(self._topic)
            if topic is None or topic.error is not None or not topic.partitions:
                reason = topic.error.str() if topic is not None and topic.error else "no partitions"
                raise _NotYet(f"topic {self._topic} is not available: {reason}")
            return sorted(topic.partitions)

        return self._kafka(f"read the metadata of topic {self._topic}", lookup)

    def _kafka(self, what: str, call: Callable[[], T]) -> T:
        """Retry transient Kafka failures for up to KAFKA_PATIENCE_S, obeying `stop`."""
        deadline = time.monotonic() + KAFKA_PATIENCE_S
        delay = 0.25
        while True:
            try:
                return call()
            except (KafkaException, _NotYet) as exc:
                err = exc.args[0] if exc.args else exc
                retriable = isinstance(exc, _NotYet) or (isinstance(err, KafkaError) and not is_fatal(err))
                text = err.str() if isinstance(err, KafkaError) else str(err)
                if not retriable or time.monotonic() > deadline:
                    raise FatalError(f"Kafka: could not {what}: {text}") from None
                self._ctx.log.warning("Kafka call failed, retrying", extra={"action": what, "error": text})
                self._ctx.wait(delay)
                delay = min(delay * 2, 4.0)


class _NotYet(Exception):
    """A Kafka precondition (topic metadata) that may still become true."""
