"""Command line: run the ArangoDB test server until SIGTERM or SIGINT.

    python -m streamforge.stack.arango_server --port 0 --root-password secret

Prints one JSON line to stdout once the server accepts connections, e.g.
``{"url": "http://127.0.0.1:40123", "host": "127.0.0.1", "port": 40123, "pid": 4242,
"username": "root", "version": "3.12.4"}``, then serves. Exit status 0 after a signal.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from uvicorn.config import LOGGING_CONFIG

from .app import ARANGO_VERSION
from .server import ArangoTestServer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streamforge.stack.arango_server",
        description="In-memory ArangoDB-compatible HTTP server for tests (StreamForge).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default: 0)")
    parser.add_argument(
        "--root-password",
        default=os.environ.get("ARANGO_ROOT_PASSWORD", ""),
        help="password of the root user (default: $ARANGO_ROOT_PASSWORD or empty)",
    )
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="accept what ArangoDB silently ignores (unknown overwriteMode/onDuplicate) instead of answering 400",
    )
    parser.add_argument(
        "--extended-names",
        action="store_true",
        help="apply ArangoDB's extended naming convention (3.12 default) instead of the traditional one",
    )
    parser.add_argument("--version-string", default=ARANGO_VERSION, help="version reported by /_api/version")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default: warning)")
    parser.add_argument("--data-dir", type=Path, help="keep the documents in this folder across restarts")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server = ArangoTestServer(
        args.host,
        args.port,
        root_password=args.root_password,
        strict=not args.lenient,
        extended_names=args.extended_names,
        version=args.version_string,
        log_level=args.log_level,
        log_config=LOGGING_CONFIG,
        data_dir=args.data_dir,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    info = {
        "url": server.url,
        "host": server.host,
        "port": server.port,
        "pid": os.getpid(),
        "username": server.username,
        "version": args.version_string,
    }
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    while not stop.wait(1.0):
        if not server.is_alive():
            sys.stderr.write("ArangoDB test server stopped unexpectedly\n")
            return 1
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
