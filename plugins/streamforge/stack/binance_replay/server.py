"""Run the replay app with uvicorn on 127.0.0.1, in a background thread or in the foreground."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import uvicorn

from .app import DEFAULT_WEIGHT_LIMIT, ReplayApp
from .catalog import Catalog, default_data_dirs
from .faults import Fault, Faults


class _QuietTruncation(logging.Filter):
    """The ``truncate`` fault leaves responses unfinished on purpose; don't log that as an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietTruncation) for f in logger.filters):
        logger.addFilter(_QuietTruncation())


class ReplayServer:
    """A Binance-compatible replay server over real data files.

    >>> with ReplayServer() as srv:          # doctest: +SKIP
    ...     httpx.get(srv.api_url + "/api/v3/ping")

    ``api_url`` is the equivalent of ``https://api.binance.com`` (append ``/api/v3/...``);
    ``archive_url`` of ``https://data.binance.vision/data/spot``.
    """

    def __init__(
        self,
        data_dirs: Sequence[str | os.PathLike[str]] | None = None,
        faults: Faults | list | dict | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        weight_limit: int | None = DEFAULT_WEIGHT_LIMIT,
        limit_policy: Literal["error", "clamp"] = "error",
        log_level: str = "warning",
    ) -> None:
        dirs = [Path(d) for d in data_dirs] if data_dirs else default_data_dirs()
        self.app = ReplayApp(Catalog(dirs), faults, weight_limit=weight_limit, limit_policy=limit_policy)
        self.host, self._port = host, port
        self.log_level = log_level
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- addresses -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("server not bound yet")
        return self._sock.getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url

    @property
    def archive_url(self) -> str:
        return f"{self.base_url}/data/spot"

    @property
    def futures_cm_archive_url(self) -> str:
        return f"{self.base_url}/data/futures/cm"

    def urls(self) -> dict[str, str]:
        return {
            "api_url": self.api_url,
            "archive_url": self.archive_url,
            "base_url": self.base_url,
            "futures_cm_archive_url": self.futures_cm_archive_url,
        }

    # -- lifecycle -------------------------------------------------------------------------------
    def bind(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._port))
            sock.listen(128)
            sock.set_inheritable(True)
            self._sock = sock
        return self._sock

    def _make_server(self) -> uvicorn.Server:
        config = uvicorn.Config(
            self.app,
            log_level=self.log_level,
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
            timeout_keep_alive=5,
        )
        _install_log_filter()  # after uvicorn.Config, which (re)configures logging
        self._server = uvicorn.Server(config)
        return self._server

    def start(self, timeout: float = 10.0) -> ReplayServer:
        """Serve in a daemon thread; returns once the socket accepts requests."""
        if self._thread is not None:
            return self
        sock = self.bind()
        server = self._make_server()
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"binance-replay:{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("binance replay server did not start")
            time.sleep(0.005)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling (main) thread until SIGTERM/SIGINT, then return normally.

        uvicorn handles those signals while it runs (graceful shutdown) and re-raises them
        afterwards with the previous handlers restored. Our handlers just ask the server to exit:
        that covers a signal arriving before uvicorn installs its own, and makes the re-raise a
        no-op, so the process ends with status 0.
        """
        server = self._make_server()

        def request_exit(_signum: int, _frame: object) -> None:
            server.should_exit = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, request_exit)
        try:
            server.run(sockets=[self.bind()])
        finally:
            self._close_socket()

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._server = None
        self._close_socket()

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and statistics (in-process; the same state as /_replay/...) -----------------------
    def set_faults(self, faults: Faults | list | dict | Fault) -> list[Fault]:
        """Replace all faults."""
        return self.app.faults.set(faults)

    def add_fault(self, kind: str | None = None, /, **fields: Any) -> Fault:
        """``add_fault("rate_limit", path_prefix="/api/v3/klines", times=1, retry_after=2)``."""
        if kind is not None:
            fields["kind"] = kind
        return self.app.faults.add(Fault(**fields))[0]

    def clear_faults(self, fault_id: str | None = None) -> int:
        return self.app.faults.clear(fault_id)

    def faults(self) -> list[Fault]:
        return self.app.faults.list()

    def stats(self) -> dict[str, Any]:
        stats = self.app.faults.stats()
        stats["used_weight_1m"] = self.app.weights.used()
        stats["weight_limit"] = self.app.weight_limit
        return stats

    def reset_stats(self) -> None:
        """Zero request/fault counters and the request-weight window."""
        self.app.faults.reset_stats()
        self.app.weights.reset()
