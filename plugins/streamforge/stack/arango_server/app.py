"""The HTTP surface of the ArangoDB test server as a plain ASGI application.

Request handling is synchronous inside the event loop and runs under ``Store.lock``, so every
request is atomic. Paths are ``/_db/{database}/_api/...`` or ``/_api/...`` (meaning
``_system``). Every request needs HTTP basic auth of a known user (401, errorNum 11
otherwise), like an ArangoDB started with authentication on.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import logging
import time
import zlib
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

from . import aql
from . import errors as E
from .errors import ArangoError
from .names import is_valid_collection_name
from .store import OVERWRITE_MODES, Collection, Database, Store

logger = logging.getLogger(__name__)

ARANGO_VERSION = "3.12.4"
DEFAULT_BATCH_SIZE = 1000
DEFAULT_CURSOR_TTL = 30.0
_TRUE = {"true", "1", "yes", "on", "y"}

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_loads = json.loads

Reply = tuple[int, Any, list[tuple[bytes, bytes]]]


def _bool(params: dict[str, str], name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in _TRUE


def _ok(status: int, body: dict[str, Any] | None = None) -> Reply:
    out = {"error": False, "code": status}
    if body:
        out.update(body)
    return status, out, []


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ArangoError(
            E.ERROR_HTTP_CORRUPTED_JSON, "VPackError error: Expecting a JSON value, got an empty body", 400
        )
    try:
        return _loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArangoError(E.ERROR_HTTP_CORRUPTED_JSON, f"VPackError error: {exc}", 400) from None


def _decompress(encoding: bytes, body: bytes) -> bytes:
    name = encoding.strip().lower()
    try:
        if name == b"gzip":
            return gzip.decompress(body)
        if name == b"deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error) as exc:
        raise ArangoError(E.ERROR_HTTP_BAD_PARAMETER, f"invalid {name.decode()} request body: {exc}", 400) from None
    if name == b"identity":
        return body
    raise ArangoError(E.ERROR_HTTP_BAD_PARAMETER, f"unsupported content-encoding {name.decode()!r}", 400)


def _unknown_path(method: str, path: str) -> ArangoError:
    return ArangoError(E.ERROR_HTTP_NOT_FOUND, f"unknown path '{path}'", 404)


def _not_allowed() -> ArangoError:
    return ArangoError(E.ERROR_HTTP_METHOD_NOT_ALLOWED, "method not supported", 405)


class _Cursor:
    __slots__ = (
        "batch_id",
        "batch_size",
        "count",
        "db",
        "expires",
        "extra",
        "last",
        "pos",
        "retry",
        "rows",
        "ttl",
    )

    def __init__(self, db: str, rows: list, batch_size: int, count: bool, ttl: float, extra: dict, retry: bool) -> None:
        self.db = db
        self.rows = rows
        self.pos = 0
        self.batch_size = batch_size
        self.count = count
        self.ttl = ttl
        self.expires = time.monotonic() + ttl
        self.extra = extra
        self.retry = retry
        self.batch_id = 0
        self.last: dict[str, Any] | None = None


class ArangoApp:
    """ASGI app. ``strict=True`` (default) rejects what ArangoDB would silently ignore and what
    is most likely a client bug: an unknown ``overwriteMode`` (400, errorNum 10)."""

    def __init__(self, store: Store, *, strict: bool = True, version: str = ARANGO_VERSION) -> None:
        self.store = store
        self.strict = strict
        self.version = version
        self.cursors: dict[str, _Cursor] = {}
        self._auth_cache: set[bytes] = set()
        self.requests_served = 0
        self.requests_completed = 0  # a request counted here has applied its changes (snapshots)

    # ----- ASGI ----------------------------------------------------------------------------------

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http":
            return
        chunks = []
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        method = scope["method"]
        status, payload, extra_headers = self.handle(
            method, scope["path"], scope["query_string"], scope["headers"], body
        )
        self.requests_completed += 1
        data = (
            b""
            if payload is None
            else (payload if isinstance(payload, bytes) else _dumps(payload).encode("utf-8", "surrogatepass"))
        )
        headers = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"server", b"ArangoDB"),
            (b"content-length", str(len(data)).encode()),
        ]
        headers.extend(extra_headers)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else data})

    # ----- dispatch ------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query_string: bytes, raw_headers: list, body: bytes) -> Reply:
        self.requests_served += 1
        headers = dict(raw_headers)
        try:
            if not self._authorized(headers.get(b"authorization")):
                return (
                    401,
                    ArangoError(E.ERROR_FORBIDDEN, "not authorized to execute this request", 401).body(),
                    [(b"www-authenticate", b'Basic realm="ArangoDB"')],
                )
            params = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)) if query_string else {}
            encoding = headers.get(b"content-encoding")
            if encoding and body:
                body = _decompress(encoding, body)
            parts = [p for p in path.split("/") if p != ""]
            if len(parts) >= 2 and parts[0] == "_db":
                db_name = parts[1]
                rest = parts[2:]
            else:
                db_name = "_system"
                rest = parts
            with self.store.lock:
                db = self.store.database(db_name)
                return self._route(method, path, db, rest, params, headers, body)
        except ArangoError as err:
            return err.http_status, err.body(), []
        except Exception as exc:  # a bug in the test server: answer like ArangoDB's internal error
            logger.exception("ArangoDB test server failed on %s %s", method, path)
            return 500, ArangoError(E.ERROR_INTERNAL, f"test server internal error: {exc!r}", 500).body(), []

    def _authorized(self, value: bytes | None) -> bool:
        if value is None:
            return False
        if value in self._auth_cache:
            return True
        scheme, _, cred = value.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            user, sep, password = base64.b64decode(cred.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep or user not in self.store.users or self.store.users[user] != password:
            return False
        self._auth_cache.add(value)
        return True

    def _route(
        self,
        method: str,
        path: str,
        db: Database,
        rest: list[str],
        params: dict[str, str],
        headers: dict,
        body: bytes,
    ) -> Reply:
        if len(rest) >= 2 and rest[0] == "_api":
            area = rest[1]
            sub = rest[2:]
            if area == "document":
                return self._document(method, db, sub, params, headers, body)
            if area == "cursor":
                return self._cursor(method, db, sub, params, body)
            if area == "import":
                if method != "POST":
                    raise _not_allowed()
                return self._import(db, sub, params, body)
            if area == "collection":
                return self._collection(method, path, db, sub, params, body)
            if area == "index":
                return self._index(method, db, sub, params, body)
            if area == "database":
                return self._database(method, path, db, sub, body)
            if area == "version" and not sub:
                return self._version(method, params)
            if area == "engine" and not sub:
                if method != "GET":
                    raise _not_allowed()
                return (
                    200,
                    {"name": "rocksdb", "supports": {"dfdb": False, "indexes": ["primary", "persistent"]}},
                    [],
                )
        if rest == ["_admin", "version"]:
            return self._version(method, params)
        if rest == ["_admin", "server", "availability"]:
            if method not in ("GET", "HEAD"):
                raise _not_allowed()
            return 200, {"mode": "default", "writeOpsEnabled": True}, []
        raise _unknown_path(method, path)

    # ----- server / databases --------------------------------------------------------------------

    def _version(self, method: str, params: dict[str, str]) -> Reply:
        if method not in ("GET", "HEAD"):
            raise _not_allowed()
        body: dict[str, Any] = {"server": "arango", "license": "community", "version": self.version}
        if _bool(params, "details", False):
            body["details"] = {
                "mode": "server",
                "role": "SINGLE",
                "architecture": "64bit",
                "server-version": self.version,
                "engine": "rocksdb",
                "test-server": "streamforge",
            }
        return 200, body, []

    def _database(self, method: str, path: str, db: Database, sub: list[str], body: bytes) -> Reply:
        if sub == ["current"]:
            if method != "GET":
                raise _not_allowed()
            return _ok(200, {"result": db.describe()})
        if sub == ["user"]:
            if method != "GET":
                raise _not_allowed()
            return _ok(200, {"result": self.store.database_names()})
        if db.name != "_system":
            raise ArangoError(E.ERROR_ARANGO_USE_SYSTEM_DATABASE, "operation only allowed in system database")
        if not sub:
            if method == "GET":
                return _ok(200, {"result": self.store.database_names()})
            if method == "POST":
                self.store.create_database(_parse_json(body))
                return _ok(201, {"result": True})
            raise _not_allowed()
        if len(sub) == 1:
            if method == "DELETE":
                self.store.drop_database(sub[0])
                return _ok(200, {"result": True})
            raise _not_allowed()
        raise _unknown_path(method, path)

    # ----- collections -----------------------------------------------------------------------------

    def _collection(
        self, method: str, path: str, db: Database, sub: list[str], params: dict[str, str], body: bytes
    ) -> Reply:
        if not sub:
            if method == "GET":
                exclude = _bool(params, "excludeSystem", False)
                result = [c.list_entry() for c in db.collections.values() if not (exclude and c.name.startswith("_"))]
                return _ok(200, {"result": result})
            if method == "POST":
                coll = db.create_collection(_parse_json(body))
                return _ok(200, coll.describe())
            raise _not_allowed()
        coll = db.collection(sub[0])
        action = sub[1] if len(sub) > 1 else None
        if len(sub) > 2:
            raise _unknown_path(method, path)
        if action is None:
            if method == "GET":
                return _ok(200, coll.list_entry())
            if method == "DELETE":
                db.drop_collection(coll.name)
                return _ok(200, {"id": str(coll.cid)})
            raise _not_allowed()
        if method == "GET":
            if action == "properties":
                return _ok(200, coll.describe())
            if action == "count":
                return _ok(200, {**coll.describe(), "count": len(coll.docs)})
            if action == "figures":
                figures = {"indexes": {"count": 1 + len(coll.indexes), "size": 0}, "documentsSize": 0}
                return _ok(200, {**coll.describe(), "count": len(coll.docs), "figures": figures})
            if action == "revision":
                return _ok(200, {**coll.describe(), "revision": self.store.next_rev()})
            if action == "checksum":
                return _ok(
                    200,
                    {
                        **coll.list_entry(),
                        "checksum": str(hash(tuple(sorted(coll.docs))) & 0xFFFFFFFF),
                        "revision": "0",
                    },
                )
            raise _unknown_path(method, path)
        if method == "PUT":
            if action == "truncate":
                coll.truncate()
                return _ok(200, coll.list_entry())
            if action == "properties":
                spec = _parse_json(body)
                if isinstance(spec, dict) and "waitForSync" in spec:
                    coll.wait_for_sync = spec["waitForSync"] is True
                return _ok(200, coll.describe())
            if action in ("load", "unload", "loadIndexesIntoMemory", "compact", "recalculateCount"):
                return _ok(200, {**coll.list_entry(), "result": True, "count": len(coll.docs)})
            if action == "rename":
                spec = _parse_json(body)
                new_name = spec.get("name") if isinstance(spec, dict) else None
                if not is_valid_collection_name(new_name, extended=self.store.extended_names):
                    raise ArangoError(
                        E.ERROR_ARANGO_ILLEGAL_NAME, f"illegal name: collection name invalid: {new_name!r}"
                    )
                if new_name in db.collections:
                    raise ArangoError(E.ERROR_ARANGO_DUPLICATE_NAME, f"duplicate name: {new_name}")
                del db.collections[coll.name]
                coll.name = new_name
                coll.id_prefix = new_name + "/"
                coll.docs = {k: {**d, "_id": coll.id_prefix + k} for k, d in coll.docs.items()}
                db.collections[new_name] = coll
                return _ok(200, coll.list_entry())
            raise _unknown_path(method, path)
        raise _not_allowed()

    # ----- indexes -----------------------------------------------------------------------------------

    def _index(self, method: str, db: Database, sub: list[str], params: dict[str, str], body: bytes) -> Reply:
        if not sub:
            name = params.get("collection")
            if not name:
                raise ArangoError(E.ERROR_ARANGO_COLLECTION_PARAMETER_MISSING, "'collection' parameter is missing")
            coll = db.collection(name)
            if method == "GET":
                indexes = coll.list_indexes()
                return _ok(200, {"indexes": indexes, "identifiers": {i["id"]: i for i in indexes}})
            if method == "POST":
                desc, created = coll.add_index(_parse_json(body), extended_names=self.store.extended_names)
                status = 201 if created else 200
                return _ok(status, {**desc, "isNewlyCreated": created})
            raise _not_allowed()
        if len(sub) != 2:
            raise ArangoError(E.ERROR_ARANGO_INDEX_NOT_FOUND, "expecting an index handle <collection>/<id>", 400)
        coll = db.collection(sub[0])
        if method == "GET":
            found = coll.find_index(sub[1])
            desc = found if isinstance(found, dict) else found.describe(coll.name)
            return _ok(200, desc)
        if method == "DELETE":
            return _ok(200, {"id": coll.drop_index(sub[1])})
        raise _not_allowed()

    # ----- documents ---------------------------------------------------------------------------------

    def _status(self, coll: Collection, params: dict[str, str]) -> int:
        return 201 if (coll.wait_for_sync or _bool(params, "waitForSync", False)) else 202

    def _overwrite_mode(self, params: dict[str, str]) -> str:
        mode = params.get("overwriteMode")
        if mode:
            if mode in OVERWRITE_MODES:
                return mode
            if self.strict:
                raise ArangoError(
                    E.ERROR_BAD_PARAMETER,
                    f"invalid value for 'overwriteMode': {mode!r} "
                    f"(expecting one of {', '.join(OVERWRITE_MODES)}; "
                    "ArangoDB itself silently ignores unknown values)",
                )
        return "replace" if _bool(params, "overwrite", False) else "conflict"

    def _document(
        self, method: str, db: Database, sub: list[str], params: dict[str, str], headers: dict, body: bytes
    ) -> Reply:
        if not sub:
            name = params.get("collection")
            if not name:
                raise ArangoError(E.ERROR_ARANGO_COLLECTION_PARAMETER_MISSING, "'collection' parameter is missing")
            sub = [name]
        if len(sub) > 2:
            raise ArangoError(E.ERROR_ARANGO_DOCUMENT_HANDLE_BAD, "illegal document identifier")
        coll = db.collection(sub[0])
        if len(sub) == 1:
            if method == "POST":
                return self._insert(coll, params, body)
            if method == "PUT" and _bool(params, "onlyget", False):
                return self._get_many(coll, body)
            if method in ("PUT", "PATCH", "DELETE"):
                return self._modify_many(method, coll, params, body)
            if method in ("GET", "HEAD"):
                raise ArangoError(E.ERROR_ARANGO_DOCUMENT_HANDLE_BAD, "expecting GET /_api/document/<document-handle>")
            raise _not_allowed()
        key = sub[1]
        if_match = headers.get(b"if-match")
        if_match_rev = if_match.decode().strip('"') if if_match else None
        if method in ("GET", "HEAD"):
            try:
                doc = coll.get(key)
            except ArangoError:
                if method == "HEAD":
                    return 404, None, []
                raise
            etag = [(b"etag", f'"{doc["_rev"]}"'.encode())]
            if_none = headers.get(b"if-none-match")
            if if_none is not None and if_none.decode().strip('"') == doc["_rev"]:
                return 304, None, etag
            if if_match_rev is not None and if_match_rev != doc["_rev"]:
                return 412, {
                    "error": True, "code": 412, "errorNum": E.ERROR_ARANGO_CONFLICT,
                    "errorMessage": "conflict, _rev values do not match",
                    "_id": doc["_id"], "_key": doc["_key"], "_rev": doc["_rev"],
                }, etag  # fmt: skip
            return 200, (None if method == "HEAD" else doc), etag
        silent = _bool(params, "silent", False)
        return_new = _bool(params, "returnNew", False)
        return_old = _bool(params, "returnOld", False)
        if method in ("PUT", "PATCH"):
            data = _parse_json(body)
            if if_match_rev is None and not _bool(params, "ignoreRevs", True) and isinstance(data, dict):
                rev = data.get("_rev")
                if_match_rev = rev if isinstance(rev, str) else None
            result = coll.modify(
                key,
                data,
                replace=method == "PUT",
                if_match=if_match_rev,
                merge_objects=_bool(params, "mergeObjects", True),
                keep_null=_bool(params, "keepNull", True),
                return_new=return_new,
                return_old=return_old,
            )
        elif method == "DELETE":
            result = coll.remove(key, if_match=if_match_rev, return_old=return_old)
            return (
                (200 if coll.wait_for_sync or _bool(params, "waitForSync", False) else 202),
                ({} if silent else result),
                [],
            )
        else:
            raise _not_allowed()
        return (
            self._status(coll, params),
            ({} if silent else result),
            [(b"etag", f'"{result["_rev"]}"'.encode())],
        )

    def _insert(self, coll: Collection, params: dict[str, str], body: bytes) -> Reply:
        data = _parse_json(body)
        mode = self._overwrite_mode(params)
        merge_objects = _bool(params, "mergeObjects", True)
        keep_null = _bool(params, "keepNull", True)
        return_new = _bool(params, "returnNew", False)
        return_old = _bool(params, "returnOld", False) and mode in ("replace", "update")
        silent = _bool(params, "silent", False)
        status = self._status(coll, params)
        insert = coll.insert
        if data.__class__ is dict:
            result, _outcome = insert(
                data,
                mode,
                merge_objects=merge_objects,
                keep_null=keep_null,
                return_new=return_new,
                return_old=return_old,
            )
            return status, ({} if silent else result), [(b"etag", f'"{result["_rev"]}"'.encode())]
        if data.__class__ is not list:
            raise ArangoError(E.ERROR_ARANGO_DOCUMENT_TYPE_INVALID, "invalid document type")
        results, errors = coll.insert_batch(
            data,
            mode,
            merge_objects=merge_objects,
            keep_null=keep_null,
            return_new=return_new,
            return_old=return_old,
        )
        return self._batch_reply(status, results, errors, silent)

    def _batch_reply(self, status: int, results: list, errors: dict[int, int], silent: bool) -> Reply:
        extra: list[tuple[bytes, bytes]] = []
        if errors:
            extra.append((b"x-arango-error-codes", _dumps({str(k): v for k, v in errors.items()}).encode()))
        if silent:
            failed = [r for r in results if r.get("error") is True]
            return status, (failed if failed else {}), extra
        return status, results, extra

    def _get_many(self, coll: Collection, body: bytes) -> Reply:
        data = _parse_json(body)
        if data.__class__ is not list:
            raise ArangoError(E.ERROR_ARANGO_DOCUMENT_TYPE_INVALID, "expecting an array of keys or documents")
        out: list[Any] = []
        errors: Counter[int] = Counter()
        for item in data:
            key = item.get("_key") if isinstance(item, dict) else item
            try:
                if not isinstance(key, str):
                    raise ArangoError(E.ERROR_ARANGO_DOCUMENT_HANDLE_BAD, "illegal document identifier")
                doc = coll.get(key)
                if isinstance(item, dict) and isinstance(item.get("_rev"), str) and item["_rev"] != doc["_rev"]:
                    raise ArangoError(E.ERROR_ARANGO_CONFLICT, "conflict, _rev values do not match", 412)
                out.append(doc)
            except ArangoError as err:
                errors[err.error_num] += 1
                out.append(err.item())
        return self._batch_reply(200, out, errors, False)

    def _modify_many(self, method: str, coll: Collection, params: dict[str, str], body: bytes) -> Reply:
        data = _parse_json(body)
        if data.__class__ is not list:
            raise ArangoError(E.ERROR_ARANGO_DOCUMENT_TYPE_INVALID, "expecting an array of documents")
        ignore_revs = _bool(params, "ignoreRevs", True)
        return_new = _bool(params, "returnNew", False)
        return_old = _bool(params, "returnOld", False)
        results: list[Any] = []
        errors: Counter[int] = Counter()
        for item in data:
            try:
                key = item.get("_key") if isinstance(item, dict) else item
                if key is None and isinstance(item, dict) and isinstance(item.get("_id"), str):
                    key = item["_id"].split("/", 1)[-1]
                rev = item.get("_rev") if isinstance(item, dict) and not ignore_revs else None
                if method == "DELETE":
                    results.append(coll.remove(key, if_match=rev, return_old=return_old))
                else:
                    if not isinstance(item, dict):
                        raise ArangoError(E.ERROR_ARANGO_DOCUMENT_TYPE_INVALID, "invalid document type")
                    results.append(
                        coll.modify(
                            key,
                            item,
                            replace=method == "PUT",
                            if_match=rev,
                            merge_objects=_bool(params, "mergeObjects", True),
                            keep_null=_bool(params, "keepNull", True),
                            return_new=return_new,
                            return_old=return_old,
                        )
                    )
            except ArangoError as err:
                errors[err.error_num] += 1
                results.append(err.item())
        status = self._status(coll, params)
        if method == "DELETE":
            status = 200 if status == 201 else 202
        return self._batch_reply(status, results, errors, _bool(params, "silent", False))

    # ----- import --------------------------------------------------------------------------------

    def _import(self, db: Database, sub: list[str], params: dict[str, str], body: bytes) -> Reply:
        if sub:
            raise ArangoError(
                E.ERROR_HTTP_BAD_PARAMETER,
                "superfluous suffix, expecting /_api/import?collection=<identifier>",
                400,
            )
        name = params.get("collection")
        if not name:
            raise ArangoError(
                E.ERROR_ARANGO_COLLECTION_PARAMETER_MISSING,
                "'collection' is missing, expecting /_api/import?collection=<identifier>",
            )
        kind = params.get("type")
        if kind not in (None, "documents", "array", "list", "auto"):
            raise ArangoError(E.ERROR_BAD_PARAMETER, "invalid value for 'type'")
        on_duplicate = params.get("onDuplicate", "error")
        if on_duplicate not in ("error", "update", "replace", "ignore"):
            if self.strict:
                raise ArangoError(E.ERROR_BAD_PARAMETER, f"invalid value for 'onDuplicate': {on_duplicate!r}")
            on_duplicate = "error"
        complete = _bool(params, "complete", False)
        want_details = _bool(params, "details", False)
        coll = db.collection(name)

        empty = 0
        items: list[tuple[int, Any, str | None]] = []  # (position, value or None, parse error)
        if kind == "auto":
            kind = "array" if body.lstrip()[:1] == b"[" else "documents"
        if kind in ("array", "list"):
            data = _parse_json(body)
            if data.__class__ is not list:
                raise ArangoError(E.ERROR_HTTP_BAD_PARAMETER, "expecting a JSON array in the request", 400)
            items = [(i + 1, doc, None) for i, doc in enumerate(data)]
        else:
            lines = body.split(b"\n")
            if lines and not lines[-1].strip():
                lines.pop()  # the terminating newline (and trailing blanks) of the last line
            header: list[str] | None = None
            for lineno, raw in enumerate(lines, start=1):
                line = raw.strip()
                if not line:
                    empty += 1
                    continue
                try:
                    value = _loads(line)
                except (ValueError, UnicodeDecodeError):
                    items.append((lineno, None, "invalid JSON type (expecting object, probably parse error)"))
                    continue
                if kind is None:  # CSV-like: the first line holds the attribute names
                    if header is None:
                        if value.__class__ is not list or not value or any(not isinstance(h, str) for h in value):
                            raise ArangoError(
                                E.ERROR_HTTP_BAD_PARAMETER, "no JSON string array found in first line", 400
                            )
                        header = value
                        continue
                    if value.__class__ is not list or len(value) != len(header):
                        items.append((lineno, None, "wrong number of JSON values"))
                        continue
                    value = {h: v for h, v in zip(header, value, strict=True) if v is not None}
                items.append((lineno, value, None))

        mode = {"error": "conflict", "update": "update", "replace": "replace", "ignore": "ignore"}[on_duplicate]
        created = updated = ignored = 0
        error_count = 0
        details: list[str] = []
        undo: list | None = [] if complete else None
        saved: dict[str, dict] | None = None
        if _bool(params, "overwrite", False):
            if complete:
                saved = dict(coll.docs)
            coll.truncate()
        for position, doc, parse_error in items:
            failure: ArangoError | None = None
            if parse_error is not None:
                failure = ArangoError(E.ERROR_HTTP_CORRUPTED_JSON, parse_error, 400)
                message = f"at position {position}: {parse_error}"
            elif doc.__class__ is not dict:
                snippet = _dumps(doc)[:255]
                failure = ArangoError(E.ERROR_ARANGO_DOCUMENT_TYPE_INVALID, "invalid document type")
                message = f"at position {position}: invalid JSON type (expecting object), offending document: "
                message += snippet
            else:
                try:
                    _result, outcome = coll.insert(doc, mode, undo=undo)
                except ArangoError as err:
                    failure = err
                    message = (
                        f"at position {position}: creating document failed with error '{err.message}', "
                        f"offending document: {_dumps(doc)[:255]}"
                    )
                else:
                    if outcome == "created":
                        created += 1
                    elif outcome == "ignored":
                        ignored += 1
                    else:
                        updated += 1
                    continue
            error_count += 1
            details.append(message)
            if complete:
                assert undo is not None
                coll.rollback(undo)
                if saved is not None:
                    coll.restore(saved)
                raise ArangoError(failure.error_num, failure.message, failure.http_status)
        body_out: dict[str, Any] = {
            "error": False,
            "created": created,
            "errors": error_count,
            "empty": empty,
            "updated": updated,
            "ignored": ignored,
        }
        if want_details:
            body_out["details"] = details
        return 201, body_out, []

    # ----- cursors -------------------------------------------------------------------------------

    def _expire_cursors(self) -> None:
        now = time.monotonic()
        for cid in [cid for cid, c in self.cursors.items() if c.expires < now]:
            del self.cursors[cid]

    def _cursor(self, method: str, db: Database, sub: list[str], params: dict[str, str], body: bytes) -> Reply:
        if not sub:
            if method != "POST":
                raise _not_allowed()
            return self._create_cursor(db, _parse_json(body))
        cid = sub[0]
        cursor = self.cursors.get(cid)
        if cursor is not None and cursor.expires < time.monotonic():
            del self.cursors[cid]
            cursor = None
        if cursor is None or cursor.db != db.name:
            raise ArangoError(E.ERROR_CURSOR_NOT_FOUND, "cursor not found")
        if method == "DELETE" and len(sub) == 1:
            del self.cursors[cid]
            return _ok(202, {"id": cid})
        if method in ("POST", "PUT") and len(sub) <= 2:
            if len(sub) == 2:
                if not cursor.retry:
                    raise ArangoError(E.ERROR_BAD_PARAMETER, "the cursor was not created with allowRetry")
                try:
                    wanted = int(sub[1])
                except ValueError:
                    raise ArangoError(E.ERROR_BAD_PARAMETER, "invalid batch id") from None
                if wanted == cursor.batch_id and cursor.last is not None:
                    cursor.expires = time.monotonic() + cursor.ttl
                    return 200, {**cursor.last, "code": 200}, []
                if wanted != cursor.batch_id + 1:
                    raise ArangoError(E.ERROR_CURSOR_NOT_FOUND, "batch id not found")
            return 200, self._batch(cid, cursor, 200), []
        raise _not_allowed()

    def _create_cursor(self, db: Database, spec: Any) -> Reply:
        if spec.__class__ is not dict:
            raise ArangoError(E.ERROR_HTTP_BAD_PARAMETER, "expecting a JSON object as body", 400)
        query = spec.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ArangoError(E.ERROR_QUERY_EMPTY, "query is empty")
        bind_vars = spec.get("bindVars") or {}
        if bind_vars.__class__ is not dict:
            raise ArangoError(E.ERROR_BAD_PARAMETER, "expecting an object for 'bindVars'")
        batch_size = spec.get("batchSize", DEFAULT_BATCH_SIZE)
        if batch_size is None:
            batch_size = DEFAULT_BATCH_SIZE
        if batch_size.__class__ is not int or batch_size < 1:
            raise ArangoError(E.ERROR_BAD_PARAMETER, "expecting non-zero value for 'batchSize'")
        ttl = spec.get("ttl") or DEFAULT_CURSOR_TTL
        if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or ttl <= 0:
            ttl = DEFAULT_CURSOR_TTL
        options = spec.get("options") or {}
        retry = isinstance(options, dict) and options.get("allowRetry") is True
        started = time.perf_counter()

        def resolve(name: str) -> list[dict]:
            coll = db.collections.get(name)
            if coll is None:
                raise ArangoError(
                    E.ERROR_ARANGO_DATA_SOURCE_NOT_FOUND,
                    f"AQL: collection or view not found: {name} (while parsing)",
                )
            return list(coll.docs.values())

        result = aql.execute(query, bind_vars, resolve)
        extra = {
            "warnings": [],
            "stats": {
                "writesExecuted": 0,
                "writesIgnored": 0,
                "documentLookups": 0,
                "seeks": 0,
                "scannedFull": result.scanned,
                "scannedIndex": 0,
                "cursorsCreated": 0,
                "cursorsRearmed": 0,
                "cacheHits": 0,
                "cacheMisses": 0,
                "filtered": result.filtered,
                "httpRequests": 0,
                "executionTime": time.perf_counter() - started,
                "peakMemoryUsage": 0,
                "intermediateCommits": 0,
            },
        }
        self._expire_cursors()
        cursor = _Cursor(db.name, result.rows, batch_size, spec.get("count") is True, float(ttl), extra, retry)
        cid = str(self.store.next_tick())
        body = self._batch(cid, cursor, 201)
        if cursor.retry or body["hasMore"]:
            self.cursors[cid] = cursor
        return 201, body, []

    def _batch(self, cid: str, cursor: _Cursor, status: int) -> dict[str, Any]:
        start = cursor.pos
        end = start + cursor.batch_size
        rows = cursor.rows
        cursor.pos = min(end, len(rows))
        has_more = end < len(rows)
        cursor.batch_id += 1
        cursor.expires = time.monotonic() + cursor.ttl
        body: dict[str, Any] = {"result": rows[start:end], "hasMore": has_more}
        if has_more or cursor.retry:
            body["id"] = cid
        if has_more and cursor.retry:
            body["nextBatchId"] = str(cursor.batch_id + 1)
        if cursor.count:
            body["count"] = len(rows)
        body["extra"] = cursor.extra
        body["cached"] = False
        body["error"] = False
        body["code"] = status
        if not has_more and not cursor.retry:
            self.cursors.pop(cid, None)
        if cursor.retry:
            cursor.last = body
        return body
