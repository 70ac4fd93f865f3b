"""Helper child process of the workers benchmark: baselines and synthetic topics.

Run by bench/workers_pipeline.py as `python -m bench.workers_baselines <command> ...`; prints one
JSON object (the measurement) as its last stdout line. Every command works on messages already
in Kafka (the loader's own output, or a synthetic topic), so the baselines see exactly the bytes
StreamForge saw. Reading those source messages into memory is never part of a timing.

Commands:

  raw        (b) the upper bound of the Kafka part: produce the messages with confluent-kafka
             asynchronously (the loader's own producer settings: idempotent, acks=all, lz4,
             linger/batch), flush, then consume them back with no validation and no ArangoDB.
  original   (a) the original services' pattern, re-implemented faithfully: one synchronous
             produce + flush per message (what aiokafka's send_and_wait does: acks=1,
             linger 0, no key, no compression), then a consumer that json.loads each message and
             writes it with python-arango `collection.insert(doc, overwrite=True)`, one HTTP
             request per document (auto-commit consumer). Capped at --cap messages.
  synth      produce a synthetic data topic: the real day (or days) repeated with shifted ids and
             timestamps (contracts models, `model_copy` + `to_bytes`), then the EndOfStream marker.
             The produce part is timed apart from the generation: it is baseline (b)'s producer on
             the large set.
  consume    (b) consumer alone: read a topic to its end-of-stream markers, no validation.
  store      (c) raw consume + bulk insert of pre-decoded documents: the topic's records are
             decoded, keyed and encoded as import bodies BEFORE the clock starts; timed is a
             consume to the end-of-stream markers (as (b)) that posts one body per --batch-size
             records to the same ArangoDB server with the sink's own request (/_api/import,
             type=documents, onDuplicate=replace, complete) and HTTP client. No validation, no
             offset commits: the upper bound for the sink on this server.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from streamforge.contracts.records import Candle, EndOfStream, Trade, candles_from_csv, is_eos, trades_from_csv
from streamforge.stack.paths import SHARED_DATA

BINANCE = SHARED_DATA / "binance"
TRADES_ZIP = BINANCE / "futures-cm" / "aggTrades" / "BTCUSD_PERP-aggTrades-2026-05-08.zip"
CANDLE_ZIPS = [BINANCE / "spot" / "klines" / "1m" / f"BTCUSDT-1m-2020-01-0{d}.zip" for d in (1, 2, 3)]
DAY_MS = 86_400_000
CONSUME_BATCH = 5000  # what the sink asks for per consume() call (engine.MAX_MESSAGES_PER_POLL)
# consume() returns when it has CONSUME_BATCH messages or after this timeout: short, so the tail of
# a topic costs (b) no waiting (an upper bound should not wait for messages that will not come).
CONSUME_TIMEOUT_S = 0.01
# (b)'s producer sends one message with this key, untimed, before the measured ones: producer-id
# acquisition and the first request are start-up, not throughput. The consumer skips it.
WARMUP_KEY = b"bench-warmup"
# librdkafka stops prefetching once queued.min.messages (100k) are queued and then waits
# fetch.queue.backoff.ms (default 1 s) before the next fetch: a consumer faster than ~150k/s
# starves in that pause. The upper bound must not: (b) retries after 10 ms. (The sink, at a few
# 10k/s, gained nothing from this setting when measured.)
RAW_CONSUMER = {"fetch.queue.backoff.ms": 10}


def _producer_tuning() -> dict[str, Any]:
    """The loader's producer settings (imported, so (b) stays identical to StreamForge's)."""
    from streamforge_workers.loader.produce import PRODUCER_TUNING

    return dict(PRODUCER_TUNING)


# --------------------------------------------------------------------------------------------
# Real data


def _zip_lines(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        (member,) = archive.namelist()
        with archive.open(member) as raw:
            return io.TextIOWrapper(raw, encoding="utf-8").read().splitlines()


@cache
def real_trades() -> tuple[Trade, ...]:
    return tuple(trades_from_csv("BTCUSD_PERP", _zip_lines(TRADES_ZIP)))


@cache
def real_candles() -> tuple[Candle, ...]:
    return tuple(c for path in CANDLE_ZIPS for c in candles_from_csv("BTCUSDT", "1m", _zip_lines(path)))


def synthetic(kind: str, count: int) -> Iterator[list[Trade] | list[Candle]]:
    """`count` records: copy k of the real data shifted by k periods (ids and times), in chunks.

    Trades: trade ids by the day's id span, first/last trade ids by their span, timestamps by
    k days. Candles: the 3 real days of 1m candles shifted by 3k days. Copy 0 is the real data.
    """
    if kind == "trades":
        base = real_trades()
        id_span = base[-1].trade_id - base[0].trade_id + 1
        sub_span = base[-1].last_trade_id - base[0].first_trade_id + 1
        k = 0
        left = count
        while left > 0:
            chunk = base[: min(left, len(base))]
            yield [
                t.model_copy(
                    update={
                        "trade_id": t.trade_id + k * id_span,
                        "first_trade_id": t.first_trade_id + k * sub_span,
                        "last_trade_id": t.last_trade_id + k * sub_span,
                        "timestamp": t.timestamp + k * DAY_MS,
                    }
                )
                for t in chunk
            ]
            left -= len(chunk)
            k += 1
    else:
        base_c = real_candles()
        shift = 3 * DAY_MS
        k = 0
        left = count
        while left > 0:
            chunk_c = base_c[: min(left, len(base_c))]
            yield [
                c.model_copy(update={"open_time": c.open_time + k * shift, "close_time": c.close_time + k * shift})
                for c in chunk_c
            ]
            left -= len(chunk_c)
            k += 1


# --------------------------------------------------------------------------------------------
# Kafka helpers


def _consumer(bootstrap: str, **extra: Any) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **extra,
        }
    )


def _partitions(client: Consumer | Producer, topic: str) -> list[int]:
    return sorted(client.list_topics(topic, timeout=10).topics[topic].partitions)


def read_messages(bootstrap: str, topic: str, limit: int | None = None) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of the data messages of `topic` up to its EOS markers (or `limit`); untimed."""
    consumer = _consumer(bootstrap)
    try:
        parts = _partitions(consumer, topic)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list[tuple[bytes | None, bytes]] = []
        done: set[int] = set()
        deadline = time.monotonic() + 300
        while len(done) < len(parts) and (limit is None or len(out) < limit):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: no end-of-stream marker on every partition after 300 s")
            for msg in consumer.consume(CONSUME_BATCH, timeout=0.5):
                if msg.error() is not None:
                    continue
                if is_eos(msg.headers()):
                    done.add(msg.partition())
                elif limit is None or len(out) < limit:
                    out.append((msg.key(), msg.value()))
        return out
    finally:
        consumer.close()


def consume_to_eos(bootstrap: str, topic: str, expect: int) -> float:
    """(b) consumer: seconds to read `expect` data messages + every EOS marker, no validation."""
    consumer = _consumer(bootstrap, **RAW_CONSUMER)
    try:
        parts = _partitions(consumer, topic)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        seen = 0
        payload = 0
        done: set[int] = set()
        started = time.perf_counter()
        while len(done) < len(parts):
            for msg in consumer.consume(CONSUME_BATCH, timeout=CONSUME_TIMEOUT_S):
                if msg.error() is not None:
                    continue
                if is_eos(msg.headers()):
                    done.add(msg.partition())
                elif msg.key() != WARMUP_KEY:
                    payload += len(msg.value())
                    seen += 1
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"{topic}: consumed {seen}/{expect} in 600 s")
        elapsed = time.perf_counter() - started
        if seen != expect:
            raise RuntimeError(f"{topic}: consumed {seen} data messages, expected {expect}")
        return elapsed
    finally:
        consumer.close()


def produce_async(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]], eos: bool) -> float:
    """(b) producer: seconds to produce + flush every message (and the EOS markers if asked)."""
    producer = Producer({"bootstrap.servers": bootstrap, **_producer_tuning()})
    parts = _partitions(producer, topic)
    producer.poll(0)
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None and not errors:
            errors.append(str(err))

    producer.produce(topic, value=b"{}", key=WARMUP_KEY, on_delivery=on_delivery)
    if producer.flush(30) != 0:
        raise RuntimeError(f"produce to {topic}: the warm-up message was not delivered")
    started = time.perf_counter()
    for i, (key, value) in enumerate(messages):
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    if eos:
        marker = EndOfStream(records=len(messages)).to_bytes()
        for p in parts:
            producer.produce(topic, value=marker, partition=p, headers=EndOfStream.headers())
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - started
    if remaining or errors:
        raise RuntimeError(f"produce to {topic}: {remaining} undelivered, errors {errors[:1]}")
    return elapsed


# --------------------------------------------------------------------------------------------
# Commands


def cmd_raw(args: argparse.Namespace) -> dict[str, Any]:
    messages = read_messages(args.bootstrap, args.src)
    produce_s = produce_async(args.bootstrap, args.dst, messages, eos=True)
    consume_s = consume_to_eos(args.bootstrap, args.dst, len(messages))
    return {
        "n": len(messages),
        "bytes": sum(len(v) for _, v in messages),
        "produce_s": round(produce_s, 4),
        "consume_s": round(consume_s, 4),
        "producer_config": _producer_tuning(),
        "consumer_config": RAW_CONSUMER,
    }


def _original_key(doc: dict[str, Any], kind: str) -> str:
    # The same _key StreamForge stores (ARCHITECTURE §4), so the server does the same work per document.
    if kind == "trades":
        return f"{doc['symbol']}_{doc['trade_id']}"
    return f"{doc['symbol']}_{doc['interval']}_{doc['open_time']}"


def cmd_original(args: argparse.Namespace) -> dict[str, Any]:
    from arango import ArangoClient

    messages = read_messages(args.bootstrap, args.src, limit=args.cap)
    n = len(messages)

    # Producer: aiokafka's defaults (acks=1, linger 0, no compression), send_and_wait per message.
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": 1, "linger.ms": 0, "enable.idempotence": False})
    producer.list_topics(args.dst, timeout=10)
    started = time.perf_counter()
    for _, value in messages:
        producer.produce(args.dst, value=value)  # the original sent no key
        if producer.flush(30) != 0:
            raise RuntimeError("synchronous produce timed out")
    produce_s = time.perf_counter() - started

    # Consumer: auto-commit, one message at a time, json.loads, one insert(overwrite=True) each.
    client = ArangoClient(hosts=args.arango_url)
    db = client.db(args.arango_db, username="root", password=args.arango_password)
    if not db.has_collection(args.collection):
        db.create_collection(args.collection)
    collection = db.collection(args.collection)
    consumer = _consumer(args.bootstrap, **{"enable.auto.commit": True})
    parts = _partitions(consumer, args.dst)
    consumer.assign([TopicPartition(args.dst, p, OFFSET_BEGINNING) for p in parts])
    done = 0
    started = time.perf_counter()
    while done < n:
        msg = consumer.poll(1.0)
        if msg is None or msg.error() is not None:
            if time.perf_counter() - started > 900:
                raise RuntimeError(f"original consumer: {done}/{n} after 900 s")
            continue
        doc = json.loads(msg.value())
        doc["_key"] = _original_key(doc, args.kind)
        collection.insert(doc, overwrite=True)
        done += 1
    consume_s = time.perf_counter() - started
    consumer.close()
    stored = collection.count()
    client.close()
    if stored != n:
        raise RuntimeError(f"original consumer stored {stored} documents, expected {n}")
    return {"n": n, "produce_s": round(produce_s, 4), "consume_s": round(consume_s, 4)}


def cmd_synth(args: argparse.Namespace) -> dict[str, Any]:
    producer = Producer({"bootstrap.servers": args.bootstrap, **_producer_tuning()})
    parts = _partitions(producer, args.topic)
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None and not errors:
            errors.append(str(err))

    gen_s = produce_s = 0.0
    total = 0
    payload = 0
    first = last = None
    started_all = time.perf_counter()
    for records in synthetic(args.kind, args.count):
        t = time.perf_counter()
        messages = [(r.key.encode(), r.to_bytes()) for r in records]
        gen_s += time.perf_counter() - t
        first = first or records[0].key
        last = records[-1].key
        t = time.perf_counter()
        for i, (key, value) in enumerate(messages):
            while True:
                try:
                    producer.produce(args.topic, value=value, key=key, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % 1000 == 0:
                producer.poll(0)
        produce_s += time.perf_counter() - t
        total += len(messages)
        payload += sum(len(v) for _, v in messages)
    t = time.perf_counter()
    marker = EndOfStream(records=total).to_bytes()
    for p in parts:
        producer.produce(args.topic, value=marker, partition=p, headers=EndOfStream.headers())
    remaining = producer.flush(300)
    produce_s += time.perf_counter() - t
    if remaining or errors:
        raise RuntimeError(f"synthetic topic {args.topic}: {remaining} undelivered, errors {errors[:1]}")
    return {
        "n": total,
        "bytes": payload,
        "generate_s": round(gen_s, 3),
        "produce_s": round(produce_s, 4),
        "total_s": round(time.perf_counter() - started_all, 3),
        "first_key": first,
        "last_key": last,
    }


def cmd_consume(args: argparse.Namespace) -> dict[str, Any]:
    consume_s = consume_to_eos(args.bootstrap, args.topic, args.expect)
    return {"n": args.expect, "consume_s": round(consume_s, 4), "consumer_config": RAW_CONSUMER}


def cmd_store(args: argparse.Namespace) -> dict[str, Any]:
    from arango import ArangoClient
    from arango.request import Request

    messages = read_messages(args.bootstrap, args.topic)
    n = len(messages)
    bodies = []
    for start in range(0, n, args.batch_size):
        docs = []
        for _, value in messages[start : start + args.batch_size]:
            doc = json.loads(value)
            doc["_key"] = _original_key(doc, args.kind)
            docs.append(json.dumps(doc, separators=(",", ":")))
        bodies.append("\n".join(docs) + "\n")
    del messages
    from streamforge_workers.sink.http_client import SinkHTTPClient

    # The sink's own HTTP client (environment read once per session), so (c) stays its upper bound.
    client = ArangoClient(hosts=args.arango_url, http_client=SinkHTTPClient())
    db = client.db(args.arango_db, username="root", password=args.arango_password)
    if not db.has_collection(args.collection):
        db.create_collection(args.collection)
    params = {"collection": args.collection, "type": "documents", "onDuplicate": "replace", "complete": True}

    def post(body: str) -> None:
        response = db.request(Request(method="post", endpoint="/_api/import", params=params, data=body))
        if not response.is_success or response.body.get("errors"):
            raise RuntimeError(f"store baseline: import failed: {response.status_code} {response.body}")

    consumer = _consumer(args.bootstrap, **RAW_CONSUMER)
    parts = _partitions(consumer, args.topic)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in parts])
    seen = posted = 0
    done: set[int] = set()
    cpu0, started = time.process_time(), time.perf_counter()
    while len(done) < len(parts):
        for msg in consumer.consume(min(CONSUME_BATCH, args.batch_size), timeout=CONSUME_TIMEOUT_S):
            if msg.error() is not None:
                continue
            if is_eos(msg.headers()):
                done.add(msg.partition())
            elif msg.key() != WARMUP_KEY:
                seen += 1
        while posted < len(bodies) and (seen >= (posted + 1) * args.batch_size or (len(done) == len(parts))):
            post(bodies[posted])
            posted += 1
        if time.perf_counter() - started > 900:
            raise RuntimeError(f"{args.topic}: stored {posted} batches in 900 s")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    consumer.close()
    stored = db.collection(args.collection).count()
    client.close()
    if seen != n or stored != n:
        raise RuntimeError(f"store baseline: consumed {seen}, stored {stored}, expected {n}")
    return {"n": n, "batch_size": args.batch_size, "store_s": round(elapsed, 4), "cpu_s": round(cpu, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers_baselines", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--bootstrap", required=True)
        p.add_argument("--arango-url", default="")
        p.add_argument("--arango-db", default="")
        p.add_argument("--arango-password", default="")
        return p

    raw = common(sub.add_parser("raw"))
    raw.add_argument("--src", required=True)
    raw.add_argument("--dst", required=True)
    original = common(sub.add_parser("original"))
    original.add_argument("--src", required=True)
    original.add_argument("--dst", required=True)
    original.add_argument("--cap", type=int, required=True)
    original.add_argument("--collection", required=True)
    original.add_argument("--kind", choices=("trades", "candles"), required=True)
    synth = common(sub.add_parser("synth"))
    synth.add_argument("--topic", required=True)
    synth.add_argument("--kind", choices=("trades", "candles"), required=True)
    synth.add_argument("--count", type=int, required=True)
    consume = common(sub.add_parser("consume"))
    consume.add_argument("--topic", required=True)
    consume.add_argument("--expect", type=int, required=True)
    store = common(sub.add_parser("store"))
    store.add_argument("--topic", required=True)
    store.add_argument("--collection", required=True)
    store.add_argument("--kind", choices=("trades", "candles"), required=True)
    store.add_argument("--batch-size", type=int, required=True)

    args = parser.parse_args(argv)
    command = {"raw": cmd_raw, "original": cmd_original, "synth": cmd_synth, "consume": cmd_consume, "store": cmd_store}
    result = command[args.command](args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
