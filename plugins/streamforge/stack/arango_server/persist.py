"""Keep a Store on disk, so `streamforge up --state-dir` finds its documents again after `down`.

One JSON snapshot per server (``<dir>/store.json``): databases, collections with their key
generator state, secondary indexes and documents, plus the tick/revision counters (new ids and
revisions stay greater than the stored ones, as in ArangoDB). Written atomically (temp file +
rename) by `Snapshots` a few seconds after a request changed something (less often for a big
store), and once more at stop; a crash loses at most that interval, never the file.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from .store import Collection, Database, Index, Store

FORMAT = 1


def dump(store: Store) -> dict[str, Any]:
    """The whole store as JSON-able data (caller holds ``store.lock``)."""
    return {
        "format": FORMAT,
        "tick": store._tick,
        "rev": store._rev,
        "users": dict(store.users),
        "databases": [
            {
                "name": db.name,
                "id": db.did,
                "collections": [_dump_collection(coll) for coll in db.collections.values()],
            }
            for db in store.databases.values()
        ],
    }


def _dump_collection(coll: Collection) -> dict[str, Any]:
    return {
        "name": coll.name,
        "id": coll.cid,
        "type": coll.type,
        "waitForSync": coll.wait_for_sync,
        "keyOptions": {"type": coll.key_type, "allowUserKeys": coll.allow_user_keys, "increment": coll.key_increment},
        "keyLast": coll.key_last,
        "indexes": [
            {
                "id": i.iid,
                "name": i.name,
                "type": i.type,
                "fields": i.fields,
                "unique": i.unique,
                "sparse": i.sparse,
                "extra": i.extra,
            }
            for i in coll.indexes
        ],
        "documents": list(coll.docs.values()),
    }


def load(store: Store, data: dict[str, Any]) -> None:
    """Replace the store's content by a `dump` (caller holds ``store.lock``)."""
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown ArangoDB test server snapshot format {data.get('format')!r}")
    store._tick = max(store._tick, int(data["tick"]))
    store._rev = max(store._rev, int(data["rev"]))
    store.users.update(data["users"])
    store.databases = {}
    for db_data in data["databases"]:
        db = Database(store, db_data["name"], int(db_data["id"]))
        store.databases[db.name] = db
        for c in db_data["collections"]:
            coll = Collection(
                store, db, c["name"], int(c["id"]), int(c["type"]), bool(c["waitForSync"]), c["keyOptions"]
            )
            coll.key_last = int(c["keyLast"])
            for i in c["indexes"]:
                index = Index(
                    int(i["id"]), i["name"], i["type"], list(i["fields"]), i["unique"], i["sparse"], i["extra"]
                )
                coll.indexes.append(index)
                if index.unique:
                    coll.unique_indexes.append(index)
            coll.restore({doc["_key"]: doc for doc in c["documents"]})  # rebuilds unique index entries
            db.collections[coll.name] = coll


class Snapshots:
    """Loads ``<directory>/store.json`` into `store` and keeps writing it while the server runs.

    `changes` returns a number that grows whenever the server may have changed the store (the
    count of requests served): a snapshot is written only when it moved.
    """

    def __init__(self, store: Store, directory: Path, changes: Any, interval: float = 2.0) -> None:
        self.store = store
        self.path = directory / "store.json"
        self.changes = changes
        self.interval = interval
        self._saved_at: Any = None
        self._cost = 0.0  # seconds the last snapshot took
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def restore(self) -> bool:
        """Load the snapshot if there is one; True if it was loaded."""
        if not self.path.exists():
            return False
        data = json.loads(self.path.read_text())
        with self.store.lock:
            load(self.store, data)
        return True

    def save(self) -> None:
        marker = self.changes()
        if marker == self._saved_at and self.path.exists():
            return
        began = time.monotonic()
        with self.store.lock:  # stored documents are never mutated in place: serialise outside the lock
            data = dump(self.store)
        text = json.dumps(data, separators=(",", ":"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        self._saved_at = marker
        self._cost = time.monotonic() - began

    def start(self) -> Snapshots:
        self._thread = threading.Thread(target=self._run, name="arango-snapshots", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        # A big store is written less often: at most ~10% of the time goes to snapshots.
        while not self._stop.wait(max(self.interval, 10 * self._cost)):
            self.save()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.save()
