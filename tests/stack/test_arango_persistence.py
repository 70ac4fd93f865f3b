"""The ArangoDB-compatible server keeps its data in a folder across restarts (`streamforge up --state-dir`).

Driven through python-arango over HTTP, as the sinks and verify use it; after a restart the
documents, indexes (a unique one still enforced), key generators and revisions behave as in
ArangoDB after a server restart.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from arango import ArangoClient
from arango.exceptions import DocumentInsertError

from streamforge.contracts.aql import WINDOW_SUMMARY, window_summary_bind_vars
from streamforge.stack.arango_server import ArangoTestServer


def _db(server: ArangoTestServer, name: str = "kept"):  # type: ignore[no-untyped-def]
    return ArangoClient(hosts=server.url).db(name, "root", "pw", verify=True)


def test_documents_indexes_and_counters_survive_a_restart(tmp_path: Path) -> None:
    with ArangoTestServer(root_password="pw", data_dir=tmp_path) as first:
        sys_db = ArangoClient(hosts=first.url).db("_system", "root", "pw", verify=True)
        sys_db.create_database("kept")
        db = _db(first)
        candles = db.create_collection("btcusdt_api_candles_1m_2020_01_01")
        candles.add_index({"type": "persistent", "fields": ["open_time"], "unique": True, "name": "by_open_time"})
        candles.insert_many([{"_key": str(t), "open_time": t, "close": 1.5 * t} for t in range(1440)])
        counters = db.create_collection("counters", key_generator="autoincrement")
        last = counters.insert({"n": 1})
        rev = candles.get("7")["_rev"]
        candles.delete("3")

    assert json.loads((tmp_path / "store.json").read_text())["format"] == 1

    with ArangoTestServer(root_password="pw", data_dir=tmp_path) as second:
        db = _db(second)
        candles = db.collection("btcusdt_api_candles_1m_2020_01_01")
        assert candles.count() == 1439
        assert candles.get("7") == {"_key": "7", "_id": "btcusdt_api_candles_1m_2020_01_01/7", "_rev": rev,
                                    "open_time": 7, "close": 10.5}  # fmt: skip
        assert candles.get("3") is None
        assert {i["name"] for i in candles.indexes()} == {"primary", "by_open_time"}
        with pytest.raises(DocumentInsertError) as refused:
            candles.insert({"_key": "dup", "open_time": 5})
        assert refused.value.error_code == 1210  # unique constraint violated, as before the restart
        assert candles.update({"_key": "7", "close": 2.0})["_rev"] > rev
        assert int(db.collection("counters").insert({"n": 2})["_key"]) > int(last["_key"])
        bind = window_summary_bind_vars("btcusdt_api_candles_1m_2020_01_01", "open_time", "_key", 0, 10_000)
        assert db.aql.execute(WINDOW_SUMMARY, bind_vars=bind).next()["count"] == 1439


def test_a_write_is_on_disk_before_stop(tmp_path: Path) -> None:
    """Snapshots are taken while serving, so a server killed without stop loses at most ~2 s."""
    server = ArangoTestServer(root_password="pw", data_dir=tmp_path)
    assert server.snapshots is not None
    server.snapshots.interval = 0.05
    with server:
        ArangoClient(hosts=server.url).db("_system", "root", "pw").create_database("kept")
        _db(server).create_collection("c").insert({"_key": "a"})
        snapshot = tmp_path / "store.json"
        for _ in range(200):
            data = json.loads(snapshot.read_text()) if snapshot.exists() else {"databases": []}
            kept = [c for d in data["databases"] for c in d["collections"] if c["name"] == "c"]
            if kept and kept[0]["documents"]:
                break
            server.snapshots._stop.wait(0.05)
        assert kept and [d["_key"] for d in kept[0]["documents"]] == ["a"]


def test_a_corrupt_snapshot_is_refused_not_ignored(tmp_path: Path) -> None:
    (tmp_path / "store.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(ValueError, match="snapshot format 99"):
        ArangoTestServer(root_password="pw", data_dir=tmp_path).start()
