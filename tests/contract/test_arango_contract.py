"""Contract tests: the ArangoDB behaviour StreamForge relies on, through python-arango 8.

They run against the in-memory ArangoDB test server by default and against a real ArangoDB
(3.11/3.12) when ``ARANGO_URL`` is set (``ARANGO_USER`` / ``ARANGO_PASSWORD``), so every
assertion here must hold for both. Behaviour only the test server has (its strictness, its
"unsupported query" message) is tested in the ``TestServerOnly`` class at the end, which is
skipped against a real ArangoDB.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import requests
from arango.exceptions import (
    AQLQueryExecuteError,
    CollectionCreateError,
    CollectionDeleteError,
    CursorCloseError,
    DatabaseCreateError,
    DatabaseDeleteError,
    DocumentGetError,
    DocumentInsertError,
    DocumentRevisionError,
    IndexCreateError,
    ServerConnectionError,
)

from streamforge.contracts.aql import WINDOW_SUMMARY, window_summary_bind_vars


def _name(prefix: str = "c") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _raw(endpoint: Any, method: str, path: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("auth", endpoint.auth)
    kwargs.setdefault("timeout", 30)
    return requests.request(method, endpoint.url + path, **kwargs)  # noqa: S113 (timeout set above)


def _assert_error_body(resp: requests.Response, status: int, error_num: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] is True
    assert body["errorNum"] == error_num
    assert body["code"] == status
    assert isinstance(body["errorMessage"], str) and body["errorMessage"]
    return body


# ----- server, auth, databases -------------------------------------------------------------------


def test_server_version(arango_sys_db):
    version = arango_sys_db.version()
    major, minor = version.split(".")[:2]
    assert int(major) == 3 and int(minor) >= 11


def test_wrong_password_is_rejected(arango_endpoint, arango_client):
    with pytest.raises(ServerConnectionError) as exc:
        arango_client.db("_system", arango_endpoint.username, arango_endpoint.password + "-wrong", verify=True)
    assert exc.value.http_code == 401

    resp = _raw(arango_endpoint, "GET", "/_api/version", auth=(arango_endpoint.username, "definitely-wrong"))
    _assert_error_body(resp, 401, 11)
    resp = _raw(arango_endpoint, "GET", "/_api/collection", auth=None)
    _assert_error_body(resp, 401, 11)


def test_database_lifecycle(arango_sys_db):
    name = _name("sf_db")
    assert arango_sys_db.has_database(name) is False
    assert arango_sys_db.create_database(name) is True
    assert arango_sys_db.has_database(name) is True
    assert name in arango_sys_db.databases()
    assert "_system" in arango_sys_db.databases()
    try:
        with pytest.raises(DatabaseCreateError) as exc:
            arango_sys_db.create_database(name)
        assert exc.value.http_code == 409
        assert exc.value.error_code == 1207
    finally:
        assert arango_sys_db.delete_database(name) is True
    assert arango_sys_db.has_database(name) is False
    with pytest.raises(DatabaseDeleteError) as exc:
        arango_sys_db.delete_database(name)
    assert exc.value.http_code == 404
    assert exc.value.error_code == 1228
    assert arango_sys_db.delete_database(name, ignore_missing=True) is False


def test_unknown_database_is_404_1228(arango_endpoint, arango_client):
    name = _name("sf_missing")
    with pytest.raises(ServerConnectionError) as exc:
        arango_client.db(name, arango_endpoint.username, arango_endpoint.password, verify=True)
    assert exc.value.http_code == 404
    assert exc.value.error_code == 1228
    _assert_error_body(_raw(arango_endpoint, "GET", f"/_db/{name}/_api/collection"), 404, 1228)


def test_arango_db_fixture_gives_an_empty_database(arango_db, arango_sys_db):
    assert arango_db.name.startswith("sf_test_")
    assert arango_sys_db.has_database(arango_db.name)
    assert [c for c in arango_db.collections() if not c["system"]] == []


# ----- collections -------------------------------------------------------------------------------


def test_collection_lifecycle(arango_db):
    name = _name()
    assert arango_db.has_collection(name) is False
    coll = arango_db.create_collection(name)
    assert coll.name == name
    assert arango_db.has_collection(name) is True
    listed = [c for c in arango_db.collections() if c["name"] == name]
    assert len(listed) == 1 and listed[0]["type"] == "document" and listed[0]["system"] is False
    props = coll.properties()
    assert props["name"] == name
    assert props["type"] == 2 and props["edge"] is False
    assert props["system"] is False
    assert coll.count() == 0

    with pytest.raises(CollectionCreateError) as exc:
        arango_db.create_collection(name)
    assert exc.value.http_code == 409
    assert exc.value.error_code == 1207

    assert arango_db.delete_collection(name) is True
    assert arango_db.has_collection(name) is False
    with pytest.raises(CollectionDeleteError) as exc:
        arango_db.delete_collection(name)
    assert exc.value.http_code == 404
    assert exc.value.error_code == 1203
    assert arango_db.delete_collection(name, ignore_missing=True) is False


@pytest.mark.parametrize(
    "name",
    ["", "1starts_with_digit", "_underscore_needs_isSystem", "has/slash", " leading_space", "x" * 257],
    ids=["empty", "digit-first", "underscore-first", "slash", "leading-space", "257-bytes"],
)
def test_illegal_collection_names(arango_db, name):
    # Illegal under both the traditional and the extended naming convention (3.12's default).
    with pytest.raises(CollectionCreateError) as exc:
        arango_db.create_collection(name)
    assert exc.value.http_code == 400
    assert exc.value.error_code == 1208


@pytest.mark.parametrize(
    "name", ["a", "Abc-def_9", "x" * 256], ids=["one-letter", "letters-dash-underscore", "256-bytes"]
)
def test_legal_collection_names(arango_db, name):
    coll = arango_db.create_collection(name)
    assert coll.properties()["name"] == name


def test_truncate_and_count(arango_db):
    coll = arango_db.create_collection(_name())
    coll.insert_many([{"_key": f"k{i}", "v": i} for i in range(25)])
    assert coll.count() == 25
    assert coll.truncate() is True
    assert coll.count() == 0
    assert coll.get("k1") is None
    coll.insert({"_key": "k1"})
    assert coll.count() == 1


# ----- indexes -----------------------------------------------------------------------------------


def test_persistent_index_creation_is_idempotent(arango_endpoint, arango_db):
    coll = arango_db.create_collection(_name())
    spec = {"type": "persistent", "fields": ["symbol", "open_time"], "unique": False, "sparse": False}
    first = coll.add_index(dict(spec))
    assert first["isNewlyCreated"] is True
    assert first["type"] == "persistent"
    assert first["fields"] == ["symbol", "open_time"]
    assert first["unique"] is False and first["sparse"] is False
    again = coll.add_index(dict(spec))
    assert again["isNewlyCreated"] is False
    assert again["id"] == first["id"]

    listed = coll.indexes()
    assert [i["type"] for i in listed].count("primary") == 1
    mine = [i for i in listed if i["id"] == first["id"]]
    assert len(mine) == 1 and mine[0]["fields"] == ["symbol", "open_time"]

    # Raw HTTP: 201 for a new index, 200 for the existing one.
    path = f"/_db/{arango_db.name}/_api/index"
    other = {"type": "persistent", "fields": ["close_time"], "unique": False, "sparse": True}
    r1 = _raw(arango_endpoint, "POST", path, params={"collection": coll.name}, json=other)
    r2 = _raw(arango_endpoint, "POST", path, params={"collection": coll.name}, json=other)
    assert (r1.status_code, r1.json()["isNewlyCreated"]) == (201, True)
    assert (r2.status_code, r2.json()["isNewlyCreated"]) == (200, False)
    assert r1.json()["id"] == r2.json()["id"]


def test_add_persistent_index_legacy_method(arango_db):
    coll = arango_db.create_collection(_name())
    with pytest.warns(DeprecationWarning):
        created = coll.add_persistent_index(fields=["a"], unique=True, sparse=True)
    assert created["new"] is True
    assert created["unique"] is True and created["sparse"] is True
    with pytest.warns(DeprecationWarning):
        assert coll.add_persistent_index(fields=["a"], unique=True, sparse=True)["new"] is False


def test_index_on_missing_collection(arango_db):
    with pytest.raises(IndexCreateError) as exc:
        arango_db.collection(_name("missing")).add_index({"type": "persistent", "fields": ["a"]})
    assert exc.value.http_code == 404
    assert exc.value.error_code == 1203


def test_unique_persistent_index_is_enforced(arango_db):
    coll = arango_db.create_collection(_name())
    coll.add_index({"type": "persistent", "fields": ["symbol", "trade_id"], "unique": True, "sparse": False})
    coll.insert({"_key": "a", "symbol": "BTCUSDT", "trade_id": 1})

    with pytest.raises(DocumentInsertError) as exc:
        coll.insert({"_key": "b", "symbol": "BTCUSDT", "trade_id": 1})
    assert exc.value.http_code == 409
    assert exc.value.error_code == 1210

    results = coll.insert_many(
        [
            {"_key": "c", "symbol": "BTCUSDT", "trade_id": 2},
            {"_key": "d", "symbol": "BTCUSDT", "trade_id": 1},
            {"_key": "e", "symbol": "ETHUSDT", "trade_id": 1},
        ]
    )
    assert [isinstance(r, DocumentInsertError) for r in results] == [False, True, False]
    assert results[1].error_code == 1210
    assert coll.count() == 3
    assert coll.get("d") is None

    # Replacing the owner of a value with itself is no conflict; taking another's value is.
    coll.insert({"_key": "a", "symbol": "BTCUSDT", "trade_id": 1, "x": 1}, overwrite_mode="replace")
    with pytest.raises(DocumentInsertError) as exc:
        coll.insert({"_key": "c", "symbol": "BTCUSDT", "trade_id": 1}, overwrite_mode="replace")
    assert exc.value.error_code == 1210
    assert coll.get("c")["trade_id"] == 2


def test_unique_index_null_handling_sparse_vs_non_sparse(arango_db):
    dense = arango_db.create_collection(_name())
    dense.add_index({"type": "persistent", "fields": ["u"], "unique": True, "sparse": False})
    dense.insert({"_key": "a"})
    with pytest.raises(DocumentInsertError) as exc:
        dense.insert({"_key": "b"})  # missing attribute indexes as null: a second null conflicts
    assert exc.value.error_code == 1210

    sparse = arango_db.create_collection(_name())
    sparse.add_index({"type": "persistent", "fields": ["u"], "unique": True, "sparse": True})
    sparse.insert_many([{"_key": "a"}, {"_key": "b"}, {"_key": "c", "u": None}])
    assert sparse.count() == 3


def test_unique_index_over_existing_duplicates_fails(arango_db):
    coll = arango_db.create_collection(_name())
    coll.insert_many([{"_key": "a", "u": 1}, {"_key": "b", "u": 1}])
    with pytest.raises(IndexCreateError) as exc:
        coll.add_index({"type": "persistent", "fields": ["u"], "unique": True})
    assert exc.value.error_code == 1210
    assert [i["type"] for i in coll.indexes()] == ["primary"]


# ----- documents ---------------------------------------------------------------------------------


def test_insert_single_document(arango_db):
    coll = arango_db.create_collection(_name())
    meta = coll.insert({"_key": "k1", "price": "1.5"})
    assert meta["_key"] == "k1"
    assert meta["_id"] == f"{coll.name}/k1"
    assert isinstance(meta["_rev"], str) and meta["_rev"]
    doc = coll.get("k1")
    assert doc == {"_key": "k1", "_id": f"{coll.name}/k1", "_rev": meta["_rev"], "price": "1.5"}

    generated = coll.insert({"price": "2"}, return_new=True)
    assert isinstance(generated["_key"], str) and generated["_key"]
    assert generated["new"]["price"] == "2"
    assert coll.get(generated["_key"])["price"] == "2"

    with pytest.raises(DocumentInsertError) as exc:
        coll.insert({"_key": "k1"})
    assert exc.value.http_code == 409
    assert exc.value.error_code == 1210

    assert coll.insert({"_key": "k2"}, silent=True) is True


@pytest.mark.parametrize(
    "key",
    ["has space", "slash/inside", "ümlaut", "x" * 255, 123, ""],
    ids=["space", "slash", "unicode", "255-bytes", "number", "empty"],
)
def test_illegal_document_keys(arango_db, key):
    coll = arango_db.create_collection(_name())
    with pytest.raises(DocumentInsertError) as exc:
        coll.insert({"_key": key})
    assert exc.value.http_code == 400
    assert exc.value.error_code == 1221
    results = coll.insert_many([{"_key": "fine"}, {"_key": key}])
    assert not isinstance(results[0], DocumentInsertError)
    assert isinstance(results[1], DocumentInsertError) and results[1].error_code == 1221


def test_legal_document_keys(arango_db):
    coll = arango_db.create_collection(_name())
    keys = ["a", "A-b_c:d.e@f(g)h+i,j=k;l$m!n*o'p%q", "0", "x" * 254, "BTCUSDT:1700000000000"]
    results = coll.insert_many([{"_key": k} for k in keys])
    assert [r["_key"] for r in results] == keys
    assert coll.count() == len(keys)


def test_insert_into_missing_collection(arango_db):
    coll = arango_db.collection(_name("missing"))
    with pytest.raises(DocumentInsertError) as exc:
        coll.insert_many([{"_key": "a"}], overwrite_mode="replace")
    assert exc.value.http_code == 404
    assert exc.value.error_code == 1203
    with pytest.raises(DocumentInsertError) as exc:
        coll.insert({"_key": "a"})
    assert exc.value.error_code == 1203


def _seed(coll) -> None:
    coll.insert_many(
        [
            {"_key": "k1", "a": 1, "b": 1, "nested": {"x": 1, "y": 1}},
            {"_key": "k2", "a": 2, "b": 2},
        ]
    )


def test_insert_many_overwrite_replace(arango_db):
    coll = arango_db.create_collection(_name())
    _seed(coll)
    old_rev = coll.get("k1")["_rev"]
    results = coll.insert_many(
        [{"_key": "k1", "a": 10, "nested": {"z": 3}}, {"_key": "k3", "a": 3}], overwrite_mode="replace"
    )
    assert not any(isinstance(r, Exception) for r in results)
    assert results[0]["_old_rev"] == old_rev
    assert results[0]["_rev"] != old_rev
    doc = coll.get("k1")
    assert {k: v for k, v in doc.items() if not k.startswith("_")} == {"a": 10, "nested": {"z": 3}}
    assert coll.get("k3")["a"] == 3
    assert coll.count() == 3


def test_insert_many_overwrite_update_merges(arango_db):
    coll = arango_db.create_collection(_name())
    _seed(coll)
    results = coll.insert_many([{"_key": "k1", "a": 10, "c": 3, "nested": {"z": 3}}], overwrite_mode="update")
    assert not isinstance(results[0], Exception)
    doc = coll.get("k1")
    assert {k: v for k, v in doc.items() if not k.startswith("_")} == {
        "a": 10,
        "b": 1,
        "c": 3,
        "nested": {"x": 1, "y": 1, "z": 3},
    }
    coll.insert_many([{"_key": "k1", "nested": {"only": True}}], overwrite_mode="update", merge=False)
    assert coll.get("k1")["nested"] == {"only": True}


def test_insert_many_overwrite_ignore_keeps_old(arango_db):
    coll = arango_db.create_collection(_name())
    _seed(coll)
    before = coll.get("k1")
    results = coll.insert_many([{"_key": "k1", "a": 99}, {"_key": "k9", "a": 9}], overwrite_mode="ignore")
    assert not any(isinstance(r, Exception) for r in results)
    assert results[0]["_rev"] == before["_rev"]
    assert coll.get("k1") == before
    assert coll.get("k9")["a"] == 9


def test_insert_many_overwrite_conflict_reports_per_document(arango_db):
    coll = arango_db.create_collection(_name())
    _seed(coll)
    results = coll.insert_many(
        [{"_key": "k3", "a": 3}, {"_key": "k1", "a": 99}, {"_key": "k4", "a": 4}], overwrite_mode="conflict"
    )
    assert isinstance(results[1], DocumentInsertError)
    assert results[1].error_code == 1210
    assert "unique constraint violated" in results[1].error_message
    assert results[0]["_key"] == "k3" and results[2]["_key"] == "k4"
    assert coll.get("k1")["a"] == 1
    assert coll.count() == 4

    with pytest.raises(DocumentInsertError) as exc:
        coll.insert_many([{"_key": "k1"}], raise_on_document_error=True)
    assert exc.value.error_code == 1210


def test_batch_insert_raw_http_shape(arango_endpoint, arango_db):
    coll = arango_db.create_collection(_name())
    path = f"/_db/{arango_db.name}/_api/document/{coll.name}"
    resp = _raw(arango_endpoint, "POST", path, json=[{"_key": "a"}, {"_key": "a"}])
    assert resp.status_code == 202
    body = resp.json()
    assert body[0]["_id"] == f"{coll.name}/a"
    assert body[1]["error"] is True and body[1]["errorNum"] == 1210
    assert "1210" in resp.headers["x-arango-error-codes"]

    resp = _raw(arango_endpoint, "POST", path, params={"waitForSync": "true"}, json=[{"_key": "b"}])
    assert resp.status_code == 201

    _assert_error_body(_raw(arango_endpoint, "POST", path + "_nope", json=[{"_key": "a"}]), 404, 1203)
    _assert_error_body(_raw(arango_endpoint, "POST", path, json={"_key": "a"}), 409, 1210)


def test_get_and_has(arango_db):
    coll = arango_db.create_collection(_name())
    coll.insert({"_key": "there", "v": 1})
    assert coll.get("there")["v"] == 1
    assert coll.get("absent") is None
    assert coll.has("there") is True
    assert coll.has("absent") is False
    with pytest.raises(DocumentGetError) as exc:
        arango_db.collection(_name("missing")).get("x")
    assert exc.value.http_code == 404
    assert exc.value.error_code == 1203


def test_replace_update_delete_with_revision_checks(arango_db):
    coll = arango_db.create_collection(_name())
    meta = coll.insert({"_key": "k", "a": 1, "b": 2})
    updated = coll.update({"_key": "k", "b": 3})
    assert coll.get("k") == {"_key": "k", "_id": meta["_id"], "_rev": updated["_rev"], "a": 1, "b": 3}
    with pytest.raises(DocumentRevisionError) as exc:
        coll.replace({"_key": "k", "_rev": meta["_rev"], "c": 1})
    assert exc.value.http_code == 412
    assert exc.value.error_code == 1200
    coll.replace({"_key": "k", "c": 1})
    assert {k: v for k, v in coll.get("k").items() if not k.startswith("_")} == {"c": 1}
    assert coll.delete("k")["_key"] == "k"
    assert coll.get("k") is None


# ----- bulk import -------------------------------------------------------------------------------


def test_import_bulk_counts(arango_db):
    coll = arango_db.create_collection(_name())
    result = coll.import_bulk([{"_key": "a", "v": 1}, {"_key": "b", "v": 2}, {"v": 3}])
    assert {k: result[k] for k in ("created", "errors", "empty", "updated", "ignored")} == {
        "created": 3, "errors": 0, "empty": 0, "updated": 0, "ignored": 0,
    }  # fmt: skip
    assert result["error"] is False
    assert coll.count() == 3


@pytest.mark.parametrize(
    ("on_duplicate", "expected", "doc_a"),
    [
        ("error", {"created": 1, "errors": 1, "updated": 0, "ignored": 0}, {"v": 1, "w": 1}),
        ("ignore", {"created": 1, "errors": 0, "updated": 0, "ignored": 1}, {"v": 1, "w": 1}),
        ("update", {"created": 1, "errors": 0, "updated": 1, "ignored": 0}, {"v": 10, "w": 1}),
        ("replace", {"created": 1, "errors": 0, "updated": 1, "ignored": 0}, {"v": 10}),
    ],
)
def test_import_bulk_on_duplicate(arango_db, on_duplicate, expected, doc_a):
    coll = arango_db.create_collection(_name())
    coll.insert({"_key": "a", "v": 1, "w": 1})
    result = coll.import_bulk(
        [{"_key": "a", "v": 10}, {"_key": "new", "v": 5}],
        on_duplicate=on_duplicate,
        halt_on_error=False,
        details=True,
    )
    assert {k: result[k] for k in expected} == expected
    assert len(result["details"]) == expected["errors"]
    assert {k: v for k, v in coll.get("a").items() if not k.startswith("_")} == doc_a
    assert coll.get("new")["v"] == 5


def test_import_bulk_halt_on_error_imports_nothing(arango_db):
    coll = arango_db.create_collection(_name())
    coll.insert({"_key": "a"})
    with pytest.raises(DocumentInsertError) as exc:
        coll.import_bulk([{"_key": "b"}, {"_key": "a"}, {"_key": "c"}], halt_on_error=True)
    assert exc.value.http_code == 409
    assert exc.value.error_code == 1210
    assert coll.count() == 1
    assert coll.get("b") is None


def test_import_bulk_bad_documents_are_counted(arango_db):
    coll = arango_db.create_collection(_name())
    result = coll.import_bulk([{"_key": "ok"}, {"_key": "bad key"}], halt_on_error=False, details=True)
    assert (result["created"], result["errors"]) == (1, 1)
    assert len(result["details"]) == 1


def test_import_into_missing_collection(arango_db):
    with pytest.raises(DocumentInsertError) as exc:
        arango_db.collection(_name("missing")).import_bulk([{"_key": "a"}])
    assert exc.value.http_code == 404
    assert exc.value.error_code == 1203


def test_import_jsonl_counts_empty_lines(arango_endpoint, arango_db):
    coll = arango_db.create_collection(_name())
    body = '{"_key":"a"}\n{"_key":"b"}\n\n{"_key":"c"}\n'
    resp = _raw(
        arango_endpoint,
        "POST",
        f"/_db/{arango_db.name}/_api/import",
        params={"collection": coll.name, "type": "documents"},
        data=body.encode(),
    )
    assert resp.status_code == 201
    assert {k: resp.json()[k] for k in ("created", "errors", "empty")} == {
        "created": 3,
        "errors": 0,
        "empty": 1,
    }


# ----- AQL ---------------------------------------------------------------------------------------


def test_return_1(arango_db):
    assert list(arango_db.aql.execute("RETURN 1")) == [1]


def test_cursor_batches(arango_endpoint, arango_db):
    coll = arango_db.create_collection(_name())
    for start in range(0, 2500, 1000):
        coll.insert_many([{"_key": f"k{i:05d}", "n": i} for i in range(start, min(start + 1000, 2500))])
    cursor = arango_db.aql.execute(
        "FOR doc IN @@collection RETURN doc",
        bind_vars={"@collection": coll.name},
        batch_size=1000,
        count=True,
    )
    assert cursor.count() == 2500
    assert cursor.has_more() is True
    assert cursor.id
    assert len(cursor.batch()) == 1000
    seen = [doc["_key"] for doc in cursor]
    assert len(seen) == 2500 and len(set(seen)) == 2500
    assert cursor.has_more() is False

    # Raw protocol: 201 + id + hasMore, then POST /_api/cursor/{id} batches of 200, then 404 1600.
    base = f"/_db/{arango_db.name}/_api/cursor"
    first = _raw(
        arango_endpoint,
        "POST",
        base,
        json={
            "query": "FOR d IN @@c RETURN d._key",
            "bindVars": {"@c": coll.name},
            "batchSize": 1000,
            "count": True,
        },
    )
    assert first.status_code == 201
    body = first.json()
    assert (len(body["result"]), body["hasMore"], body["count"]) == (1000, True, 2500)
    cursor_id = body["id"]
    sizes = [len(body["result"])]
    while body["hasMore"]:
        nxt = _raw(arango_endpoint, "POST", f"{base}/{cursor_id}")
        assert nxt.status_code == 200
        body = nxt.json()
        sizes.append(len(body["result"]))
    assert sizes == [1000, 1000, 500]
    _assert_error_body(_raw(arango_endpoint, "POST", f"{base}/{cursor_id}"), 404, 1600)


def test_cursor_close_before_exhausted(arango_db):
    coll = arango_db.create_collection(_name())
    coll.insert_many([{"n": i} for i in range(30)])
    cursor = arango_db.aql.execute("FOR d IN @@c RETURN d", bind_vars={"@c": coll.name}, batch_size=10)
    assert cursor.has_more() is True
    assert cursor.close() is True
    with pytest.raises(CursorCloseError) as exc:
        cursor.close()
    assert exc.value.http_code == 404
    assert exc.value.error_code == 1600
    assert cursor.close(ignore_missing=True) is False


def test_collection_all_and_keys(arango_db):
    coll = arango_db.create_collection(_name())
    coll.insert_many([{"_key": f"k{i}", "n": i} for i in range(15)])
    assert sorted(d["_key"] for d in coll.all()) == sorted(f"k{i}" for i in range(15))
    assert len(list(coll.all(skip=5, limit=4))) == 4
    assert sorted(coll.keys()) == sorted(f"k{i}" for i in range(15))
    assert sorted(coll.ids()) == sorted(f"{coll.name}/k{i}" for i in range(15))
    assert [d["n"] for d in coll.find({"n": 3})] == [3]


def test_sort_by_bind_attribute(arango_db):
    coll = arango_db.create_collection(_name())
    coll.insert_many(
        [
            {"_key": "a", "t": 30},
            {"_key": "b", "t": 5},
            {"_key": "c", "t": 100},
            {"_key": "d", "t": 5.5},
            {"_key": "e"},
        ]
    )
    query = "FOR d IN @@collection SORT d.@field RETURN d"
    asc = [d["_key"] for d in arango_db.aql.execute(query, bind_vars={"@collection": coll.name, "field": "t"})]
    assert asc == ["e", "b", "d", "a", "c"]  # null (missing) sorts first
    desc = arango_db.aql.execute(
        "FOR d IN @@collection SORT d.@field DESC RETURN d._key",
        bind_vars={"@collection": coll.name, "field": "t"},
    )
    assert list(desc) == ["c", "a", "d", "b", "e"]

    strings = arango_db.create_collection(_name())
    strings.insert_many([{"s": s} for s in ["delta", "alpha", "charlie", "bravo", "10", "9"]])
    got = arango_db.aql.execute(
        "FOR d IN @@collection SORT d.@field RETURN d.s",
        bind_vars={"@collection": strings.name, "field": "s"},
    )
    assert list(got) == ["10", "9", "alpha", "bravo", "charlie", "delta"]


def _window(db, coll: str, start: int, end: int) -> list[dict[str, Any]]:
    bind_vars = window_summary_bind_vars(coll, "open_time", "trade_id", start, end)
    return list(db.aql.execute(WINDOW_SUMMARY, bind_vars=bind_vars))


def test_window_summary_on_empty_collection(arango_db):
    coll = arango_db.create_collection(_name())
    assert _window(arango_db, coll.name, 0, 10**13) == [{"count": 0, "first": None, "last": None}]


def test_window_summary_on_documents(arango_db):
    coll = arango_db.create_collection(_name())
    docs = [{"_key": f"t{i}", "open_time": 1000 + i * 10, "trade_id": 500 - i} for i in range(50)]
    docs += [
        {"_key": "no_time", "trade_id": 1},  # null time: excluded by >=
        {"_key": "null_time", "open_time": None, "trade_id": 2},
        {"_key": "string_time", "open_time": "1200", "trade_id": 3},  # string > every number: excluded by <
        {"_key": "no_id", "open_time": 1005},  # counted, but MIN/MAX ignore its null id
    ]
    coll.insert_many(docs)
    # [1000, 1100): open_time 1000..1090 (10 docs, trade_id 500..491) + no_id
    assert _window(arango_db, coll.name, 1000, 1100) == [{"count": 11, "first": 491, "last": 500}]
    # end is exclusive, start inclusive
    assert _window(arango_db, coll.name, 1010, 1020) == [{"count": 1, "first": 499, "last": 499}]
    assert _window(arango_db, coll.name, 1491, 2000) == [{"count": 0, "first": None, "last": None}]
    assert _window(arango_db, coll.name, 0, 10**13) == [{"count": 51, "first": 451, "last": 500}]
    only_null_ids = _window(arango_db, coll.name, 1005, 1006)
    assert only_null_ids == [{"count": 1, "first": None, "last": None}]


def test_aql_type_order_and_comparisons(arango_db):
    values = [{"a": 1}, [1], "a", 1, True, False, None, 0.5, "", []]
    got = list(arango_db.aql.execute("FOR v IN @values SORT v RETURN v", bind_vars={"values": values}))
    assert got == [None, False, True, 0.5, 1, "", "a", [], [1], {"a": 1}]
    got = list(
        arango_db.aql.execute("FOR v IN @values FILTER v == 1 RETURN v", bind_vars={"values": [1, 1.0, True, "1"]})
    )
    assert got == [1, 1.0]
    got = list(
        arango_db.aql.execute("FOR v IN @values FILTER v < 0 RETURN v", bind_vars={"values": [None, False, -1, "x"]})
    )
    assert got == [None, False, -1]


def test_aql_subset_used_by_tests(arango_db):
    coll = arango_db.create_collection(_name())
    coll.insert_many(
        [
            {"_key": "a", "n": 1, "g": "x", "m": {"k": 10}},
            {"_key": "b", "n": 2, "g": "y", "m": {"k": 20}},
            {"_key": "c", "n": 3, "g": "x"},
            {"_key": "d", "n": 2, "g": "y", "m": {"k": 5}},
        ]
    )

    def run(query: str, **bind: Any) -> list[Any]:
        return list(arango_db.aql.execute(query, bind_vars={"@c": coll.name, **bind}))

    assert sorted(run("FOR d IN @@c FILTER d.n IN @ns RETURN d._key", ns=[1, 3])) == ["a", "c"]
    assert sorted(run("FOR d IN @@c FILTER d.n NOT IN [1, 3] && d.g == 'y' RETURN d._key")) == ["b", "d"]
    assert sorted(run("FOR d IN @@c FILTER d.n == 1 || d.m.k == 5 RETURN d._key")) == ["a", "d"]
    assert sorted(run("FOR d IN @@c FILTER !(d.n > 1) RETURN d['_key']")) == ["a"]
    assert run("FOR d IN @@c SORT d.n DESC, d._key ASC LIMIT 1, 2 RETURN d._key") == ["b", "d"]
    assert run("FOR d IN @@c SORT d.m.k RETURN {key: d._key, k: d.m.k}")[:2] == [
        {"key": "c", "k": None},
        {"key": "d", "k": 5},
    ]
    assert sorted(run("FOR d IN @@c RETURN DISTINCT d.g")) == ["x", "y"]
    assert run("FOR d IN @@c FILTER d.g == @g COLLECT WITH COUNT INTO n RETURN n", g="y") == [2]
    assert run("FOR d IN @@c FILTER d.g == 'none' COLLECT WITH COUNT INTO n RETURN n") == [0]
    assert run(
        "FOR d IN @@c COLLECT AGGREGATE total = SUM(d.n), lo = MIN(d.m.k), hi = MAX(d.@attr), c = LENGTH(1) "
        "RETURN [total, lo, hi, c]",
        attr="n",
    ) == [[8, 5, 3, 4]]


def test_query_errors(arango_db):
    coll = arango_db.create_collection(_name())
    with pytest.raises(AQLQueryExecuteError) as exc:
        arango_db.aql.execute("FOR d IN @@collection RETURN", bind_vars={"@collection": coll.name})
    assert (exc.value.http_code, exc.value.error_code) == (400, 1501)
    with pytest.raises(AQLQueryExecuteError) as exc:
        arango_db.aql.execute("FOR d IN @@collection RETURN d", bind_vars={"@collection": _name("missing")})
    assert (exc.value.http_code, exc.value.error_code) == (404, 1203)
    with pytest.raises(AQLQueryExecuteError) as exc:
        arango_db.aql.execute(WINDOW_SUMMARY, bind_vars={"@collection": coll.name, "time_field": "t"})
    assert (exc.value.http_code, exc.value.error_code) == (400, 1551)
    with pytest.raises(AQLQueryExecuteError) as exc:
        arango_db.aql.execute("RETURN 1", bind_vars={"unused": 1})
    assert (exc.value.http_code, exc.value.error_code) == (400, 1552)


def test_error_body_shape(arango_endpoint, arango_db):
    body = _assert_error_body(
        _raw(arango_endpoint, "GET", f"/_db/{arango_db.name}/_api/collection/{_name('missing')}/properties"),
        404,
        1203,
    )
    assert set(body) >= {"error", "errorNum", "errorMessage", "code"}
    coll = arango_db.create_collection(_name())
    _assert_error_body(_raw(arango_endpoint, "GET", f"/_db/{arango_db.name}/_api/document/{coll.name}/nope"), 404, 1202)


# ----- concurrency -------------------------------------------------------------------------------


def test_concurrent_writers_and_readers(arango_endpoint, arango_db):
    coll_name = _name()
    arango_db.create_collection(coll_name)
    failures: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            client = arango_endpoint.client()
            db = client.db(arango_db.name, arango_endpoint.username, arango_endpoint.password)
            coll = db.collection(coll_name)
            for b in range(5):
                docs = [{"_key": f"w{w}-{b}-{i}", "open_time": b * 100 + i, "trade_id": i} for i in range(100)]
                results = coll.insert_many(docs, overwrite_mode="replace")
                assert not any(isinstance(r, Exception) for r in results)
            client.close()
        except BaseException as exc:  # reported below
            failures.append(exc)

    def reader() -> None:
        try:
            client = arango_endpoint.client()
            db = client.db(arango_db.name, arango_endpoint.username, arango_endpoint.password)
            for _ in range(10):
                (row,) = _window(db, coll_name, 0, 10**6)
                assert row["count"] % 100 == 0  # batches are atomic
            client.close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)] + [
        threading.Thread(target=reader) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    assert arango_db.collection(coll_name).count() == 4 * 5 * 100
    assert _window(arango_db, coll_name, 0, 10**6) == [{"count": 2000, "first": 0, "last": 99}]


# ----- test-server-only behaviour ----------------------------------------------------------------


@pytest.fixture
def test_server(arango_endpoint):
    if not arango_endpoint.is_test_server:
        pytest.skip("behaviour specific to the ArangoDB test server (ARANGO_URL points to a real ArangoDB)")
    return arango_endpoint.server


class TestServerOnly:
    def test_unsupported_query_is_1501_with_clear_message(self, test_server, arango_db):
        with pytest.raises(AQLQueryExecuteError) as exc:
            arango_db.aql.execute("FOR d IN @@c COLLECT s = d.symbol RETURN s", bind_vars={"@c": "x"})
        assert (exc.value.http_code, exc.value.error_code) == (400, 1501)
        assert "query not supported by the ArangoDB test server" in exc.value.error_message

    def test_unknown_overwrite_mode_is_rejected(self, test_server, arango_db):
        coll = arango_db.create_collection(_name())
        with pytest.raises(DocumentInsertError) as exc:
            coll.insert_many([{"_key": "a"}], overwrite_mode="upsert")
        assert (exc.value.http_code, exc.value.error_code) == (400, 10)
        assert coll.count() == 0

    def test_store_is_inspectable_in_process(self, test_server, arango_db):
        if not hasattr(test_server, "store"):
            pytest.skip("the test server runs as a subprocess (ARANGO_TEST_SERVER_MODE=subprocess)")
        coll = arango_db.create_collection(_name())
        coll.insert({"_key": "a", "v": 1})
        docs = test_server.store.documents(arango_db.name, coll.name)
        assert [d["v"] for d in docs] == [1]
