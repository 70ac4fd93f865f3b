"""Loader → Kafka → sink → ArangoDB, end to end with real processes and REAL Binance data.

Each 2020-01-01..03 BTCUSDT 1m day is loaded as its own window, from the REST API and from the
archive; the stored documents must equal the rows of the published daily zip.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arango.database import StandardDatabase

from streamforge.contracts.names import RunNames, h6
from streamforge.contracts.records import candles_from_csv
from streamforge.stack.paths import REPO_ROOT
from tests.workers import EventReader, Worker, iso, worker_env

ZIPS = REPO_ROOT / "plugins/streamforge/stack/binance_replay/data/binance/spot/klines/1m"
DAYS = [datetime(2020, 1, day, tzinfo=UTC) for day in (1, 2, 3)]


def source_documents(day: datetime) -> dict[str, dict[str, Any]]:
    path = ZIPS / f"BTCUSDT-1m-{day:%Y-%m-%d}.zip"
    with zipfile.ZipFile(path) as archive, archive.open(archive.namelist()[0]) as member:
        return {c.key: c.to_document() for c in candles_from_csv("BTCUSDT", "1m", io.TextIOWrapper(member))}


def stored_documents(db: StandardDatabase, collection: str) -> dict[str, dict[str, Any]]:
    cursor = db.aql.execute("FOR d IN @@c RETURN d", bind_vars={"@c": collection}, batch_size=5000)
    return {d["_key"]: {k: v for k, v in d.items() if k not in ("_id", "_rev")} for d in cursor}


@pytest.mark.kafka
@pytest.mark.parametrize("source", ["rest", "archive"])
@pytest.mark.parametrize("day", DAYS, ids=lambda d: f"{d:%Y-%m-%d}")
def test_a_day_of_1m_candles_is_stored_exactly(
    source: str,
    day: datetime,
    kafka_broker: Any,
    binance_replay: Any,
    arango_endpoint: Any,
    arango_db: StandardDatabase,
) -> None:
    names = RunNames("BTCUSDT", "api_candles_1m", day, h6("test_pipeline", f"{source}-{day:%F}", 1))
    kafka_broker.create_topics([names.data_topic], exist_ok=True)
    created_at = datetime.now(UTC) - timedelta(seconds=1)
    common = {
        "SYMBOL": "BTCUSDT",
        "TYPE": "api_candles_1m",
        "KAFKA_TOPIC": names.data_topic,
    }
    loader_env = worker_env(
        kafka_broker,
        names.queue_id,
        created_at=created_at,
        **common,
        TELEMETRY_PRODUCER_ID=names.telemetry_id("loader"),
        TIME_RANGE=f"{iso(day)}/{iso(day + timedelta(days=1))}",
        LOADER_SOURCE=source,
        BINANCE_API_URL=binance_replay.api_url,
        BINANCE_ARCHIVE_URL=binance_replay.archive_url,
    )
    sink_env = worker_env(
        kafka_broker,
        names.queue_id,
        created_at=created_at,
        **common,
        TELEMETRY_PRODUCER_ID=names.telemetry_id("arango-candles"),
        COLLECTION_NAME=names.collection,
        ARANGO_URL=arango_endpoint.url,
        ARANGO_DB=arango_db.name,
        ARANGO_USER=arango_endpoint.username,
        ARANGO_PASSWORD=arango_endpoint.password,
    )
    with EventReader(kafka_broker, names.queue_id) as events:
        # Sink first: it must wait for data rather than miss what the loader writes before it joins.
        with Worker.module("streamforge_workers.sink", env=sink_env) as sink:
            with Worker.module("streamforge_workers.loader", env=loader_env) as loader:
                assert loader.wait(60) == 0, loader.describe()
            assert sink.wait(60) == 0, sink.describe()
        finished = {e.component: e for e in events.drain(1.0) if e.status == "finished"}

    assert finished["loader"].records_written == 1440
    assert finished["arango-candles"].records_written == 1440
    assert stored_documents(arango_db, names.collection) == source_documents(day)
