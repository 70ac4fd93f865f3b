"""In-memory data model of the ArangoDB test server: databases, collections, documents, indexes.

Every public method expects the caller to hold ``Store.lock`` (the HTTP layer does), so a
whole request (a batch insert, an import with ``complete=true``, a cursor snapshot) is atomic
with respect to every other request and to in-process callers.

Stored documents are never mutated in place: a replace or update stores a new dict. A
reader may therefore keep references to documents (a cursor's result) after releasing the
lock without seeing later writes half-applied.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from . import errors as E
from .errors import ArangoError, collection_not_found, database_not_found
from .names import (
    KEY_PATTERN,
    is_valid_collection_name,
    is_valid_database_name,
    is_valid_index_name,
)
from .values import norm as _norm

OVERWRITE_MODES = ("conflict", "replace", "update", "ignore")
SECONDARY_INDEX_TYPES = {"persistent": "persistent", "hash": "persistent", "skiplist": "persistent"}
DOCUMENT_COLLECTION = 2
EDGE_COLLECTION = 3

_SKIP = object()  # the document is not in a sparse index


def _path_value(doc: dict, path: tuple[str, ...]) -> Any:
    value: Any = doc
    for part in path:
        if value.__class__ is not dict:
            return None
        value = value.get(part)
    return value


def _strip_nulls(value: dict) -> dict:
    return {k: (_strip_nulls(v) if v.__class__ is dict else v) for k, v in value.items() if v is not None}


def merge_patch(old: dict, patch: dict, merge_objects: bool, keep_null: bool) -> dict:
    """ArangoDB's update semantics (PATCH / overwriteMode=update) for one document."""
    out = dict(old)
    for k, v in patch.items():
        if v is None:
            if keep_null:
                out[k] = None
            else:
                out.pop(k, None)
            continue
        if v.__class__ is dict:
            current = out.get(k)
            if merge_objects and current.__class__ is dict:
                out[k] = merge_patch(current, v, True, keep_null)
            else:
                out[k] = v if keep_null else _strip_nulls(v)
        else:
            out[k] = v
    return out


class Index:
    __slots__ = ("entries", "extra", "fields", "iid", "name", "paths", "sparse", "type", "unique")

    def __init__(
        self, iid: int, name: str, itype: str, fields: list[str], unique: bool, sparse: bool, extra: dict
    ) -> None:
        self.iid = iid
        self.name = name
        self.type = itype
        self.fields = fields
        self.paths = [tuple(f.split(".")) for f in fields]
        self.unique = unique
        self.sparse = sparse
        self.extra = extra
        self.entries: dict[Any, str] = {}  # normalised value -> _key (unique indexes only)

    def value_of(self, doc: dict) -> Any:
        values = []
        for path in self.paths:
            v = doc.get(path[0]) if len(path) == 1 else _path_value(doc, path)
            if v is None and self.sparse:
                return _SKIP
            values.append(_norm(v))
        return tuple(values)

    def describe(self, collection: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"{collection}/{self.iid}",
            "type": self.type,
            "name": self.name,
            "fields": list(self.fields),
            "unique": self.unique,
            "sparse": self.sparse,
        }
        if self.type == "persistent":
            body.update(
                {
                    "deduplicate": self.extra.get("deduplicate", True),
                    "estimates": self.extra.get("estimates", True),
                    "cacheEnabled": self.extra.get("cacheEnabled", False),
                    "selectivityEstimate": 1,
                }
            )
            if self.extra.get("storedValues"):
                body["storedValues"] = self.extra["storedValues"]
        elif self.type == "ttl":
            body["expireAfter"] = self.extra.get("expireAfter")
        return body


class Collection:
    def __init__(
        self,
        store: Store,
        db: Database,
        name: str,
        cid: int,
        ctype: int,
        wait_for_sync: bool,
        key_options: dict,
    ) -> None:
        self.store = store
        self.db = db
        self.name = name
        self.cid = cid
        self.type = ctype
        self.wait_for_sync = wait_for_sync
        self.key_type = key_options.get("type", "traditional")
        self.allow_user_keys = bool(key_options.get("allowUserKeys", True))
        self.key_increment = int(key_options.get("increment", 1) or 1)
        self.key_last = int(key_options.get("offset", 0) or 0)
        self.docs: dict[str, dict] = {}
        self.indexes: list[Index] = []
        self.unique_indexes: list[Index] = []
        self.id_prefix = name + "/"

    # ----- description -------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        key_options: dict[str, Any] = {"type": self.key_type, "allowUserKeys": self.allow_user_keys}
        if self.key_type == "traditional":
            key_options["lastValue"] = self.key_last
        elif self.key_type == "autoincrement":
            key_options.update({"increment": self.key_increment, "offset": 0, "lastValue": self.key_last})
        return {
            "id": str(self.cid),
            "name": self.name,
            "status": 3,
            "type": self.type,
            "isSystem": self.name.startswith("_"),
            "globallyUniqueId": f"h{self.cid:x}/{self.cid}",
            "waitForSync": self.wait_for_sync,
            "keyOptions": key_options,
            "writeConcern": 1,
            "replicationFactor": 1,
            "numberOfShards": 1,
            "shardKeys": ["_key"],
            "shardingStrategy": "hash",
            "cacheEnabled": False,
            "computedValues": None,
            "schema": None,
            "syncByRevision": True,
            "usesRevisionsAsDocumentIds": True,
            "isSmart": False,
            "isDisjoint": False,
        }

    def list_entry(self) -> dict[str, Any]:
        return {
            "id": str(self.cid),
            "name": self.name,
            "status": 3,
            "type": self.type,
            "isSystem": self.name.startswith("_"),
            "globallyUniqueId": f"h{self.cid:x}/{self.cid}",
        }

    # ----- keys ------------------------------------------------------------------------------

    def _generate_key(self) -> str:
        docs = self.docs
        while True:
            if self.key_type == "uuid":
                key = str(uuid.uuid4())
            elif self.key_type == "autoincrement":
                self.key_last += self.key_increment
                key = str(self.key_last)
            elif self.key_type == "padded":
                self.key_last += 1
                key = f"{self.key_last:016x}"
            else:
                self.key_last = self.store.next_tick()
                key = str(self.key_last)
            if key not in docs:
                return key

    def _key_for(self, doc: dict) -> str:
        key = doc.get("_key", _SKIP)
        if key is _SKIP:
            return self._generate_key()
        if not self.allow_user_keys:
            raise ArangoError(
                E.ERROR_ARANGO_DOCUMENT_KEY_UNEXPECTED, "collection does not allow using user-defined keys"
            )
        if key.__class__ is not str or KEY_PATTERN.match(key) is None:
            raise ArangoError(E.ERROR_ARANGO_DOCUMENT_KEY_BAD, "illegal document key")
        return key

    # ----- index maintenance -------------------------------------------------------------------

    def _check_unique(self, new_doc: dict, key: str) -> None:
        for idx in self.unique_indexes:
            v = idx.value_of(new_doc)
            if v is _SKIP:
                continue
            owner = idx.entries.get(v)
            if owner is not None and owner != key:
                raise E.unique_violation(idx.name, idx.type, idx.fields, owner)

    def _put(self, key: str, new_doc: dict | None) -> dict | None:
        """Store (or with None remove) a document, maintaining unique indexes. Returns the old one."""
        docs = self.docs
        old = docs.get(key)
        if self.unique_indexes:
            for idx in self.unique_indexes:
                if old is not None:
                    v = idx.value_of(old)
                    if v is not _SKIP and idx.entries.get(v) == key:
                        del idx.entries[v]
                if new_doc is not None:
                    v = idx.value_of(new_doc)
                    if v is not _SKIP:
                        idx.entries[v] = key
        if new_doc is None:
            docs.pop(key, None)
        else:
            docs[key] = new_doc
        return old

    def _check_edge(self, doc: dict) -> None:
        if self.type != EDGE_COLLECTION:
            return
        for attr in ("_from", "_to"):
            value = doc.get(attr)
            if value.__class__ is not str or value.count("/") != 1 or value.startswith("/") or value.endswith("/"):
                raise ArangoError(E.ERROR_ARANGO_INVALID_EDGE_ATTRIBUTE, f"invalid edge attribute: {attr}")

    def _build(self, doc: dict, key: str, rev: str) -> dict:
        new = {"_key": key, "_id": self.id_prefix + key, "_rev": rev}
        new.update(doc)
        new["_key"] = key
        new["_id"] = self.id_prefix + key
        new["_rev"] = rev
        return new

    # ----- document writes -------------------------------------------------------------------

    def insert(
        self,
        doc: Any,
        mode: str = "conflict",
        *,
        merge_objects: bool = True,
        keep_null: bool = True,
        return_new: bool = False,
        return_old: bool = False,
        undo: list | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Insert one document. Returns (result, outcome) with outcome created/replaced/updated/ignored."""
        if doc.__class__ is not dict:
            raise ArangoError(E.ERROR_ARANGO_DOCUMENT_TYPE_INVALID, "invalid document type")
        key = self._key_for(doc)
        existing = self.docs.get(key)
        if existing is None:
            new = self._build(doc, key, self.store.next_rev())
            self._check_edge(new)
            if self.unique_indexes:
                self._check_unique(new, key)
                self._put(key, new)
            else:
                self.docs[key] = new
            if undo is not None:
                undo.append((key, None))
            result: dict[str, Any] = {"_id": new["_id"], "_key": key, "_rev": new["_rev"]}
            if return_new:
                result["new"] = new
            return result, "created"
        if mode == "conflict":
            raise E.unique_violation("primary", "primary", ["_key"], key)
        if mode == "ignore":
            return {"_id": existing["_id"], "_key": key, "_rev": existing["_rev"]}, "ignored"
        rev = self.store.next_rev()
        if mode == "replace":
            new = self._build(doc, key, rev)
        else:  # update
            new = merge_patch(existing, doc, merge_objects, keep_null)
            new["_key"] = key
            new["_id"] = existing["_id"]
            new["_rev"] = rev
        self._check_edge(new)
        if self.unique_indexes:
            self._check_unique(new, key)
        self._put(key, new)
        if undo is not None:
            undo.append((key, existing))
        result = {"_id": new["_id"], "_key": key, "_rev": rev, "_oldRev": existing["_rev"]}
        if return_old:
            result["old"] = existing
        if return_new:
            result["new"] = new
        return result, ("replaced" if mode == "replace" else "updated")

    def insert_batch(
        self,
        docs: list,
        mode: str,
        *,
        merge_objects: bool = True,
        keep_null: bool = True,
        return_new: bool = False,
        return_old: bool = False,
    ) -> tuple[list[dict[str, Any]], dict[int, int]]:
        """Batch insert with per-document results (errors inline). Same semantics as ``insert``
        per document; a tight loop for the common case (new key, no unique index, not an edge)."""
        results: list[dict[str, Any]] = []
        append = results.append
        errors: dict[int, int] = {}
        stored = self.docs
        prefix = self.id_prefix
        key_match = KEY_PATTERN.match
        fast = not self.unique_indexes and self.type == DOCUMENT_COLLECTION and self.allow_user_keys
        store = self.store
        insert = self.insert
        for doc in docs:
            if fast and doc.__class__ is dict:
                key = doc.get("_key")
                if key is not None and key.__class__ is str:
                    old = stored.get(key)
                    if (old is None or mode == "replace") and key_match(key) is not None:
                        store._rev += 1
                        rev = f"_{store._rev:x}"
                        doc_id = prefix + key
                        new = {"_key": key, "_id": doc_id, "_rev": rev}
                        new.update(doc)
                        if "_id" in doc or "_rev" in doc:
                            new["_id"] = doc_id
                            new["_rev"] = rev
                        stored[key] = new
                        result = {"_id": doc_id, "_key": key, "_rev": rev}
                        if old is not None:
                            result["_oldRev"] = old["_rev"]
                            if return_old:
                                result["old"] = old
                        if return_new:
                            result["new"] = new
                        append(result)
                        continue
            try:
                result, _outcome = insert(
                    doc,
                    mode,
                    merge_objects=merge_objects,
                    keep_null=keep_null,
                    return_new=return_new,
                    return_old=return_old,
                )
                append(result)
            except ArangoError as err:
                errors[err.error_num] = errors.get(err.error_num, 0) + 1
                append(err.item())
        return results, errors

    def rollback(self, undo: list) -> None:
        for key, old in reversed(undo):
            self._put(key, old)

    def get(self, key: str) -> dict:
        doc = self.docs.get(key)
        if doc is None:
            raise ArangoError(E.ERROR_ARANGO_DOCUMENT_NOT_FOUND, "document not found")
        return doc

    def _check_rev(self, existing: dict, if_match: str | None) -> None:
        if if_match is not None and if_match != existing["_rev"]:
            raise ArangoError(E.ERROR_ARANGO_CONFLICT, "conflict, _rev values do not match", 412)

    def modify(
        self,
        key: Any,
        body: Any,
        *,
        replace: bool,
        if_match: str | None = None,
        merge_objects: bool = True,
        keep_null: bool = True,
        return_new: bool = False,
        return_old: bool = False,
    ) -> dict[str, Any]:
        """PUT (replace) / PATCH (update) of an existing document."""
        if body.__class__ is not dict:
            raise ArangoError(E.ERROR_ARANGO_DOCUMENT_TYPE_INVALID, "invalid document type")
        if key.__class__ is not str or KEY_PATTERN.match(key) is None:
            raise ArangoError(E.ERROR_ARANGO_DOCUMENT_HANDLE_BAD, "illegal document identifier")
        existing = self.get(key)
        self._check_rev(existing, if_match)
        rev = self.store.next_rev()
        if replace:
            new = self._build(body, key, rev)
            new["_id"] = existing["_id"]
        else:
            new = merge_patch(existing, body, merge_objects, keep_null)
            new["_key"] = key
            new["_id"] = existing["_id"]
            new["_rev"] = rev
        self._check_edge(new)
        if self.unique_indexes:
            self._check_unique(new, key)
        self._put(key, new)
        result: dict[str, Any] = {"_id": new["_id"], "_key": key, "_rev": rev, "_oldRev": existing["_rev"]}
        if return_old:
            result["old"] = existing
        if return_new:
            result["new"] = new
        return result

    def remove(self, key: Any, *, if_match: str | None = None, return_old: bool = False) -> dict[str, Any]:
        if key.__class__ is not str or KEY_PATTERN.match(key) is None:
            raise ArangoError(E.ERROR_ARANGO_DOCUMENT_HANDLE_BAD, "illegal document identifier")
        existing = self.get(key)
        self._check_rev(existing, if_match)
        self._put(key, None)
        result: dict[str, Any] = {"_id": existing["_id"], "_key": key, "_rev": existing["_rev"]}
        if return_old:
            result["old"] = existing
        return result

    def restore(self, docs: dict[str, dict]) -> None:
        """Replace the whole content (index entries rebuilt)."""
        self.truncate()
        for key, doc in docs.items():
            self._put(key, doc)

    def truncate(self) -> None:
        self.docs = {}
        for idx in self.unique_indexes:
            idx.entries = {}

    # ----- indexes -----------------------------------------------------------------------------

    def primary_index(self) -> dict[str, Any]:
        return {
            "id": f"{self.name}/0",
            "type": "primary",
            "name": "primary",
            "fields": ["_key"],
            "unique": True,
            "sparse": False,
            "selectivityEstimate": 1,
        }

    def edge_index(self) -> dict[str, Any]:
        return {
            "id": f"{self.name}/2",
            "type": "edge",
            "name": "edge",
            "fields": ["_from", "_to"],
            "unique": False,
            "sparse": False,
            "selectivityEstimate": 1,
        }

    def list_indexes(self) -> list[dict[str, Any]]:
        out = [self.primary_index()]
        if self.type == EDGE_COLLECTION:
            out.append(self.edge_index())
        out.extend(idx.describe(self.name) for idx in self.indexes)
        return out

    def find_index(self, handle: str) -> Index | dict[str, Any]:
        for desc in self.list_indexes()[: 2 if self.type == EDGE_COLLECTION else 1]:
            if handle in (desc["id"].split("/", 1)[1], desc["name"]):
                return desc
        for idx in self.indexes:
            if handle == str(idx.iid) or handle == idx.name:
                return idx
        raise ArangoError(E.ERROR_ARANGO_INDEX_NOT_FOUND, "index not found")

    def add_index(self, spec: Any, *, extended_names: bool) -> tuple[dict[str, Any], bool]:
        """Create (or find the equivalent) index. Returns (description, newly_created)."""
        if spec.__class__ is not dict:
            raise ArangoError(E.ERROR_HTTP_BAD_PARAMETER, "expecting a JSON object as body", 400)
        raw_type = spec.get("type")
        if raw_type == "ttl":
            itype = "ttl"
        elif raw_type in SECONDARY_INDEX_TYPES:
            itype = SECONDARY_INDEX_TYPES[raw_type]
        elif raw_type.__class__ is str and raw_type:
            raise ArangoError(
                E.ERROR_BAD_PARAMETER,
                f"index type '{raw_type}' is not supported by the ArangoDB test server "
                "(persistent, hash, skiplist and ttl are)",
            )
        else:
            raise ArangoError(E.ERROR_BAD_PARAMETER, "invalid index type")
        fields = spec.get("fields")
        if (
            fields.__class__ is not list
            or not fields
            or any(f.__class__ is not str or not f for f in fields)
            or len(set(fields)) != len(fields)
        ):
            raise ArangoError(
                E.ERROR_BAD_PARAMETER, "invalid index fields: expecting a non-empty array of distinct strings"
            )
        if any("[*]" in f for f in fields):
            raise ArangoError(
                E.ERROR_BAD_PARAMETER, "array indexes ([*]) are not supported by the ArangoDB test server"
            )
        unique = spec.get("unique", False) is True
        sparse = spec.get("sparse", False) is True
        extra: dict[str, Any] = {}
        if itype == "ttl":
            if len(fields) != 1:
                raise ArangoError(E.ERROR_BAD_PARAMETER, "ttl index must have exactly one field")
            if not isinstance(spec.get("expireAfter"), (int, float)) or isinstance(spec.get("expireAfter"), bool):
                raise ArangoError(E.ERROR_BAD_PARAMETER, "expireAfter attribute must be a number")
            extra["expireAfter"] = spec["expireAfter"]
            unique, sparse = False, True
        else:
            for attr in ("deduplicate", "estimates", "cacheEnabled", "storedValues"):
                if attr in spec:
                    extra[attr] = spec[attr]
        name = spec.get("name")
        if name is not None and not is_valid_index_name(name, extended=extended_names):
            raise ArangoError(E.ERROR_ARANGO_ILLEGAL_NAME, "illegal index name")
        for idx in self.indexes:
            if idx.type == itype and idx.fields == fields and idx.unique == unique and idx.sparse == sparse:
                if name is None or name == idx.name:
                    return idx.describe(self.name), False
        if name is not None and (name in ("primary", "edge") or any(idx.name == name for idx in self.indexes)):
            raise ArangoError(E.ERROR_ARANGO_DUPLICATE_NAME, f"duplicate value for index name: {name}")
        iid = self.store.next_tick()
        index = Index(iid, name if name is not None else f"idx_{iid}", itype, list(fields), unique, sparse, extra)
        if unique:
            for key, doc in self.docs.items():
                v = index.value_of(doc)
                if v is _SKIP:
                    continue
                owner = index.entries.get(v)
                if owner is not None:
                    raise E.unique_violation(index.name, index.type, index.fields, owner)
                index.entries[v] = key
            self.unique_indexes.append(index)
        self.indexes.append(index)
        return index.describe(self.name), True

    def drop_index(self, handle: str) -> str:
        found = self.find_index(handle)
        if not isinstance(found, Index):
            raise ArangoError(E.ERROR_FORBIDDEN, "cannot drop primary or edge index")
        self.indexes.remove(found)
        if found in self.unique_indexes:
            self.unique_indexes.remove(found)
        return f"{self.name}/{found.iid}"


class Database:
    def __init__(self, store: Store, name: str, did: int) -> None:
        self.store = store
        self.name = name
        self.did = did
        self.collections: dict[str, Collection] = {}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": str(self.did),
            "path": "none",
            "isSystem": self.name == "_system",
            "sharding": "",
            "replicationFactor": 1,
            "writeConcern": 1,
        }

    def collection(self, name: str) -> Collection:
        coll = self.collections.get(name)
        if coll is None:
            raise collection_not_found(name)
        return coll

    def create_collection(self, spec: Any) -> Collection:
        if spec.__class__ is not dict:
            raise ArangoError(E.ERROR_HTTP_BAD_PARAMETER, "expecting a JSON object as body", 400)
        name = spec.get("name")
        is_system = spec.get("isSystem") is True
        if not is_valid_collection_name(name, allow_system=is_system, extended=self.store.extended_names):
            raise ArangoError(E.ERROR_ARANGO_ILLEGAL_NAME, f"illegal name: collection name invalid: {name!r}")
        ctype = spec.get("type", DOCUMENT_COLLECTION)
        if ctype not in (DOCUMENT_COLLECTION, EDGE_COLLECTION, "document", "edge"):
            raise ArangoError(E.ERROR_BAD_PARAMETER, "invalid collection type")
        ctype = EDGE_COLLECTION if ctype in (EDGE_COLLECTION, "edge") else DOCUMENT_COLLECTION
        key_options = spec.get("keyOptions") or {}
        if key_options.__class__ is not dict:
            raise ArangoError(E.ERROR_BAD_PARAMETER, "invalid keyOptions")
        if key_options.get("type", "traditional") not in ("traditional", "autoincrement", "padded", "uuid"):
            raise ArangoError(E.ERROR_BAD_PARAMETER, "invalid key generator type")
        if name in self.collections:
            raise ArangoError(E.ERROR_ARANGO_DUPLICATE_NAME, f"duplicate name: {name}")
        coll = Collection(
            self.store,
            self,
            name,
            self.store.next_tick(),
            ctype,
            spec.get("waitForSync") is True,
            key_options,
        )
        self.collections[name] = coll
        return coll

    def drop_collection(self, name: str) -> Collection:
        coll = self.collection(name)
        del self.collections[name]
        return coll


class Store:
    """All databases of one server, the users, and the id/revision generators."""

    def __init__(self, users: dict[str, str] | None = None, *, extended_names: bool = False) -> None:
        self.lock = threading.RLock()
        self.users = dict(users) if users is not None else {"root": ""}
        self.extended_names = extended_names
        self._tick = int(time.time() * 1000) % 10_000_000 * 1000 + 100_000
        self._rev = int(time.time() * 1_000_000) << 4
        self.databases: dict[str, Database] = {}
        self.databases["_system"] = Database(self, "_system", 1)

    def next_tick(self) -> int:
        self._tick += 1
        return self._tick

    def next_rev(self) -> str:
        self._rev += 1
        return f"_{self._rev:x}"

    # ----- databases -------------------------------------------------------------------------

    def database(self, name: str) -> Database:
        db = self.databases.get(name)
        if db is None:
            raise database_not_found(name)
        return db

    def create_database(self, spec: Any) -> Database:
        if spec.__class__ is not dict:
            raise ArangoError(E.ERROR_HTTP_BAD_PARAMETER, "expecting a JSON object as body", 400)
        name = spec.get("name")
        if not is_valid_database_name(name, extended=self.extended_names):
            raise ArangoError(E.ERROR_ARANGO_DATABASE_NAME_INVALID, "database name invalid")
        if name in self.databases:
            raise ArangoError(E.ERROR_ARANGO_DUPLICATE_NAME, "duplicate database name")
        for user in spec.get("users") or []:
            if isinstance(user, dict) and isinstance(user.get("username"), str):
                self.users.setdefault(user["username"], str(user.get("passwd", "")))
        db = Database(self, name, self.next_tick())
        self.databases[name] = db
        return db

    def drop_database(self, name: str) -> None:
        if name == "_system":
            raise ArangoError(E.ERROR_FORBIDDEN, "cannot drop the _system database", 403)
        self.database(name)
        del self.databases[name]

    def database_names(self) -> list[str]:
        return sorted(self.databases)

    # ----- convenience for in-process callers -----------------------------------------------

    def documents(self, database: str, collection: str) -> list[dict]:
        """A snapshot of a collection's documents (for tests peeking at the server)."""
        with self.lock:
            return list(self.database(database).collection(collection).docs.values())
