"""Run the ArangoDB test server with uvicorn: in a background thread, or as a child process."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from .app import ARANGO_VERSION, ArangoApp
from .persist import Snapshots
from .store import Store


class ArangoTestServer:
    """An in-memory, ArangoDB-compatible HTTP server for tests.

    ::

        with ArangoTestServer(root_password=password) as server:
            client = ArangoClient(hosts=server.url)
            db = client.db("_system", "root", "pw", verify=True)

    ``start()`` binds ``host:port`` (port 0 = a free port, see ``url``) and returns once the
    server accepts connections; ``stop()`` shuts it down (idempotent). ``store`` is the live
    in-memory data (take ``store.lock`` when touching it directly).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        root_password: str = "",
        users: dict[str, str] | None = None,
        strict: bool = True,
        extended_names: bool = False,
        version: str = ARANGO_VERSION,
        log_level: str = "warning",
        log_config: dict[str, Any] | None = None,
        data_dir: Path | None = None,
    ) -> None:
        all_users = {"root": root_password}
        all_users.update(users or {})
        self.store = Store(all_users, extended_names=extended_names)
        self.app = ArangoApp(self.store, strict=strict, version=version)
        self.host = host
        self.port = port
        self.log_level = log_level
        self.log_config = log_config  # None: leave the process' logging setup alone
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None
        # data_dir: keep the documents on disk across restarts (a snapshot, see persist.py)
        self.snapshots = Snapshots(self.store, data_dir, lambda: self.app.requests_completed) if data_dir else None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def username(self) -> str:
        return "root"

    @property
    def password(self) -> str:
        return self.store.users["root"]

    def start(self, timeout: float = 10.0) -> ArangoTestServer:
        if self._thread is not None:
            return self
        if self.snapshots is not None:
            root_password = self.password  # this start's password wins over the stored one
            self.snapshots.restore()
            self.store.users["root"] = root_password
            self.snapshots.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_level=self.log_level,
            log_config=self.log_config,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"arango-test-server:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"ArangoDB test server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("ArangoDB test server did not start in time")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported through start()
            self._error = exc

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        if self.snapshots is not None:
            self.snapshots.stop()
        self._server = None
        self._thread = None
        self._socket = None

    def __enter__(self) -> ArangoTestServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ArangoTestServer {self.url}>"


class ArangoTestServerProcess:
    """The same server as a child process (``python -m streamforge.stack.arango_server``).

    Use it when the test process itself is busy (the server then gets its own core and GIL) or
    to mimic a remote ArangoDB. ``start()`` returns once the child printed its URL; ``stop()``
    sends SIGTERM (then SIGKILL after ``timeout``). There is no in-process ``store``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        root_password: str = "",
        strict: bool = True,
        extended_names: bool = False,
        python: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.root_password = root_password
        self.strict = strict
        self.extended_names = extended_names
        self.python = python or sys.executable
        self.info: dict[str, Any] = {}
        self._proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return str(self.info["url"])

    @property
    def username(self) -> str:
        return "root"

    @property
    def password(self) -> str:
        return self.root_password

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 30.0) -> ArangoTestServerProcess:
        if self._proc is not None:
            return self
        repo_root = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH", "")) if p)
        cmd = [self.python, "-m", "streamforge.stack.arango_server", "--host", self.host, "--port", str(self.port)]
        if not self.strict:
            cmd.append("--lenient")
        if self.extended_names:
            cmd.append("--extended-names")
        env["ARANGO_ROOT_PASSWORD"] = self.root_password  # not on the command line (ps)
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=repo_root)
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line:
            self.stop()
            raise RuntimeError("ArangoDB test server process did not report its URL in time")
        self.info = json.loads(line)
        self.port = int(self.info["port"])
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> ArangoTestServerProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ArangoTestServerProcess {self.info.get('url', '?')} pid={self.pid}>"
