"""ArangoDB side of the sink: collection setup and batch writes, with bounded retries.

Every request goes through one tenacity policy: transient failures (connection refused or
reset, timeouts, HTTP 5xx/408/429, write-write conflicts) are retried with exponential backoff
(SinkSettings.arango_retry_*); anything else — and transient failures that outlast the
budget — ends the sink with a message that says what failed where. The backoff sleeps through
the worker's interruptible wait, so a `stop` is obeyed while ArangoDB is down too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import requests
from arango import ArangoClient
from arango.exceptions import ArangoServerError, DocumentInsertError
from arango.request import Request
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from streamforge.contracts.config import SinkSettings
from streamforge.contracts.names import Layout
from streamforge.contracts.record_codec import Document, import_body
from streamforge_workers.runtime.worker import FatalError, Interrupted
from streamforge_workers.sink.http_client import SinkHTTPClient
from streamforge_workers.sink.metrics import ARANGO_RETRIES
from streamforge_workers.sink.routing import CollectionRouter, OutsideWindow

T = TypeVar("T")

_MAX_BACKOFF_S = 8.0
# ArangoDB error numbers that mean "try again": write-write conflict, lock timeout, shutting down.
_TRANSIENT_ERROR_NUMS = {1200, 18, 21}
_ERR_DATABASE_NOT_FOUND = 1228
_ERR_DUPLICATE_NAME = 1207


class ArangoUnavailable(FatalError):
    """ArangoDB stayed unreachable or failing through every retry."""


class ArangoWriteError(FatalError):
    """ArangoDB refused the request or some documents of a batch (not worth retrying)."""


class _IncompleteImport(ArangoWriteError):
    """The import answered success but did not store every document (never retried)."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.RequestException | ConnectionError):
        # ConnectionError covers python-arango's ConnectionAbortedError ("Can't connect to host(s)").
        return True
    if isinstance(exc, ArangoServerError):
        return exc.http_code in (408, 429) or exc.http_code >= 500 or exc.error_code in _TRANSIENT_ERROR_NUMS
    return False


class ArangoWriter:
    """Writes a run's documents; `setup()` first, then `write()` per batch.

    The collection is COLLECTION_NAME, or each document's day's collection (routing.py),
    created when its first batch arrives.
    """

    def __init__(
        self,
        settings: SinkSettings,
        *,
        component: str,
        sleep: Callable[[float], None] = time.sleep,
        log: logging.Logger | None = None,
    ) -> None:
        self._settings = settings
        self._component = component
        self._sleep = sleep
        self._log = log or logging.getLogger(__name__)
        # Retries are ours alone: python-arango and urllib3 would otherwise retry connection
        # errors on their own (3 x 3, with their own sleeps), out of reach of `stop`.
        self._client = ArangoClient(
            hosts=settings.arango_url,
            resolver_max_tries=1,
            http_client=SinkHTTPClient(request_timeout=settings.arango_timeout_seconds, retry_attempts=0),
        )
        self._db = self._client.db(
            settings.arango_db,
            username=settings.arango_user,
            password=settings.arango_password.get_secret_value(),
            verify=False,
        )
        self._router = CollectionRouter(settings)
        self._ready: set[str] = set()  # collections known to exist

    def setup(self) -> None:
        """Check the database; create COLLECTION_NAME (and its time index for layout single).

        Routed per day, the collections are created as their first documents arrive.
        """
        if self._router.fixed is None:
            name = self._settings.arango_db
            self._call(f"look up database {name}", lambda: self._db.properties())
            return
        self._ensure(self._router.fixed)
        if self._settings.collection_layout is Layout.SINGLE:
            collection, field = self._db.collection(self._router.fixed), self._settings.data_type.time_field
            # Creating an identical index again returns the existing one, so this is idempotent.
            self._call(
                f"create the {field} index on {self._router.fixed}",
                lambda: collection.add_index({"type": "persistent", "fields": [field], "name": f"idx_{field}"}),
            )

    def _ensure(self, name: str) -> None:
        if name in self._ready:
            return
        exists = self._call(f"look up collection {name}", lambda: self._db.has_collection(name))
        if not exists:
            self._call(f"create collection {name}", lambda: self._create_collection(name))
            self._log.info("created collection", extra={"collection": name})
        self._ready.add(name)

    def _create_collection(self, name: str) -> None:
        try:
            self._db.create_collection(name)
        except ArangoServerError as exc:
            if exc.error_code != _ERR_DUPLICATE_NAME:  # created meanwhile by someone else: fine
                raise

    def write(self, docs: list[Document]) -> None:
        """Insert-or-replace every document; returns only if ALL of them are stored.

        A batch spanning several days is one import per collection; the caller commits only
        after all of them, so a failure in between replays the whole batch (replace on `_key`).
        """
        if not docs:
            return
        try:
            parts = self._router.split(docs)
        except OutsideWindow as exc:
            raise ArangoWriteError(str(exc)) from None
        for name, part in parts.items():
            self._ensure(name)
            # Encoded once, outside the retries: the body is the same for every attempt.
            body = import_body(part).decode("ascii")  # keys and fields are ASCII by the contract
            self._call(f"write {len(part)} documents to {name}", partial(self._import, name, body, len(part)))

    def _import(self, collection: str, body: str, count: int) -> None:
        """One bulk import, all or nothing (`complete`): a failing document fails the whole request,
        so a retry or a replay after a crash writes the same batch again (replace on `_key`)."""
        request = Request(
            method="post",
            endpoint="/_api/import",
            params={
                "collection": collection,
                "type": "documents",
                "onDuplicate": "replace",
                "complete": True,
                "details": True,
            },
            data=body,
            write=collection,
        )
        response = self._db.request(request)
        if not response.is_success:
            raise DocumentInsertError(response, request)
        result: dict[str, Any] = response.body
        stored = int(result.get("created", 0)) + int(result.get("updated", 0))
        if result.get("errors") or stored != count:
            details = result.get("details") or []
            raise _IncompleteImport(
                f"ArangoDB at {self._settings.arango_url}: the import into {collection} "
                f"stored {stored} of {count} documents ({result.get('errors')} errors)"
                + (f"; first: {details[0]}" if details else "")
            )

    def close(self) -> None:
        self._client.close()

    # --- the one retry policy ---------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        s = self._settings
        started = time.monotonic()
        retrying = Retrying(
            stop=stop_after_attempt(s.arango_retry_attempts),
            wait=wait_exponential(multiplier=s.arango_retry_wait_seconds, max=_MAX_BACKOFF_S),
            retry=retry_if_exception(is_transient),
            sleep=self._sleep,
            before_sleep=lambda state: self._before_sleep(what, state),
            reraise=True,
        )
        try:
            return retrying(fn)
        except Interrupted:  # `stop` arrived during a backoff sleep
            raise
        except Exception as exc:
            raise self._fatal(what, exc, time.monotonic() - started) from exc

    def _before_sleep(self, what: str, state: RetryCallState) -> None:
        ARANGO_RETRIES.labels(self._component).inc()
        exc = state.outcome.exception() if state.outcome else None
        self._log.warning(
            "ArangoDB request failed, retrying",
            extra={
                "action": what,
                "attempt": state.attempt_number,
                "retry_in_s": round(state.upcoming_sleep, 2),
                "error": str(exc),
            },
        )

    def _fatal(self, what: str, exc: Exception, elapsed: float) -> FatalError:
        s = self._settings
        where = f"ArangoDB at {s.arango_url}"
        if isinstance(exc, FatalError):
            return exc
        if isinstance(exc, ArangoServerError) and exc.error_code == _ERR_DATABASE_NOT_FOUND:
            return ArangoWriteError(
                f"database {s.arango_db!r} does not exist on {where}: create it first "
                "(the sink creates collections, not databases)"
            )
        if isinstance(exc, ArangoServerError) and exc.http_code in (401, 403):
            return ArangoWriteError(
                f"{where} refused user {s.arango_user!r} on database {s.arango_db!r} "
                f"(HTTP {exc.http_code}): check ARANGO_USER/ARANGO_PASSWORD"
            )
        if is_transient(exc):
            return ArangoUnavailable(
                f"{where} unavailable: could not {what} in {s.arango_retry_attempts} attempts "
                f"over {elapsed:.1f} s; last error: {type(exc).__name__}: {exc}"
            )
        return ArangoWriteError(f"{where}: could not {what}: {exc}")
