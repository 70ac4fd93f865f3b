"""An in-memory, ArangoDB-compatible HTTP server for tests and local runs.

It implements the part of ArangoDB's HTTP API that StreamForge uses through python-arango 8
(databases, collections, persistent indexes, document CRUD and batch inserts with overwrite
modes, bulk import, AQL cursors for a small query subset, basic auth). The docstrings of
``app``, ``store``, ``aql`` and ``values`` describe the exact surface and the known differences
from a real ArangoDB.

In-process::

    from streamforge.stack.arango_server import ArangoTestServer
    with ArangoTestServer(root_password=password) as server:
        ...  # server.url, server.store

As a process (prints one JSON line ``{"url": ..., "pid": ...}`` and serves until SIGTERM/SIGINT)::

    python -m streamforge.stack.arango_server --port 0 --root-password pw

or ``ArangoTestServerProcess(root_password=password).start()`` / ``.stop()`` from Python.
"""

from .app import ARANGO_VERSION, ArangoApp
from .errors import ArangoError
from .server import ArangoTestServer, ArangoTestServerProcess
from .store import Store

__all__ = [
    "ARANGO_VERSION",
    "ArangoApp",
    "ArangoError",
    "ArangoTestServer",
    "ArangoTestServerProcess",
    "Store",
]
