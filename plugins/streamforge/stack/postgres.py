"""A private PostgreSQL cluster for Airflow's metadata DB (SQLite breaks on backfills).

initdb + pg_ctl under a temp dir, on 127.0.0.1 and a free port, trust auth for the local
superuser only. Usable as a context manager, a pytest fixture, or `python -m streamforge.stack.postgres up`.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from streamforge.stack.ports import free_port


def _pg_bin(name: str) -> str:
    """Find a PostgreSQL server binary: PATH first, then Debian's versioned directories."""
    if found := shutil.which(name):
        return found
    for version_dir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        candidate = version_dir / name
        if candidate.exists():
            return str(candidate)
    raise RuntimeError(f"PostgreSQL binary {name!r} not found: install the postgresql package")


class PostgresCluster:
    def __init__(self, port: int | None = None, directory: Path | None = None) -> None:
        """`directory`: keep the cluster there across restarts (else a temp dir, deleted at stop)."""
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.persistent = directory is not None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self._dir = directory or Path(tempfile.mkdtemp(prefix="sf-pg-"))
        self._data = self._dir / "data"
        self._log = self._dir / "postgres.log"
        # initdb refuses to run as root: run the server as the unprivileged `postgres` account.
        self._run_as = "postgres" if os.geteuid() == 0 else None

    # --- lifecycle --------------------------------------------------------------------------

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self._run_as, "--", *args] if self._run_as else list(args)

    def start(self) -> PostgresCluster:
        if self._run_as:
            entry = pwd.getpwnam(self._run_as)
            os.chown(self._dir, entry.pw_uid, entry.pw_gid)
            if subprocess.run(self._cmd("test", "-w", str(self._dir)), check=False).returncode != 0:
                raise RuntimeError(
                    f"PostgreSQL runs as the {self._run_as!r} account (initdb refuses root), which cannot "
                    f"reach {self._dir}: choose a folder whose parents it may enter (e.g. under /var/tmp)"
                )
        if not (self._data / "PG_VERSION").exists():
            subprocess.run(
                self._cmd(_pg_bin("initdb"), "-D", str(self._data), "-A", "trust", "-U", self.user, "-E", "UTF8"),
                check=True,
                capture_output=True,
            )
        options = f"-p {self.port} -k {self._dir} -c listen_addresses={self.host} -c max_connections=200 -c fsync=off"
        subprocess.run(
            self._cmd(_pg_bin("pg_ctl"), "-D", str(self._data), "-o", options, "-l", str(self._log), "-w", "start"),
            check=True,
            capture_output=True,
        )
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        if self._data.exists():
            subprocess.run(
                self._cmd(_pg_bin("pg_ctl"), "-D", str(self._data), "-m", "fast", "-w", "stop"),
                capture_output=True,
            )
        if not self.persistent:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- use --------------------------------------------------------------------------------

    def has_database(self, name: str) -> bool:
        found = subprocess.run(
            ["psql", "-h", self.host, "-p", str(self.port), "-U", self.user, "-tAc",
             f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return found.stdout.strip() == "1"

    def create_database(self, name: str) -> str:
        subprocess.run(
            [
                "psql",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                f'CREATE DATABASE "{name}"',
            ],
            check=True,
            capture_output=True,
        )
        return self.sqlalchemy_url(name)

    def sqlalchemy_url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"


def main() -> int:
    parser = argparse.ArgumentParser(description="Run a private PostgreSQL cluster until interrupted.")
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--database", default="airflow")
    args = parser.parse_args()
    with PostgresCluster() as cluster:
        url = cluster.create_database(args.database)
        print(json.dumps({"sqlalchemy_url": url, "port": cluster.port}), flush=True)
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        while not stop:
            time.sleep(0.5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
