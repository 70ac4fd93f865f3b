"""CLI: ``python -m streamforge.stack.binance_replay --port 0 [--data-dir DIR ...] [--faults JSON]``.

Prints one JSON line ``{"api_url": ..., "archive_url": ..., ...}`` on stdout once the port is
bound, then serves until SIGTERM/SIGINT (exit status 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .app import DEFAULT_WEIGHT_LIMIT
from .catalog import default_data_dirs
from .faults import Faults
from .server import ReplayServer


def _faults_arg(value: str) -> Faults:
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        return Faults.parse(json.loads(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid --faults: {exc}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streamforge.stack.binance_replay",
        description="Binance-compatible replay HTTP server over real market data, with fault injection.",
        epilog='Faults example: --faults \'[{"kind": "rate_limit", "path_prefix": "/api/v3/klines", '
        '"times": 2, "retry_after": 1}]\'. Runtime admin API: GET/POST/DELETE /_replay/faults, '
        "GET/DELETE /_replay/stats, GET /_replay/catalog.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port, 0 = pick a free one (default)")
    parser.add_argument(
        "--data-dir",
        action="append",
        type=Path,
        dest="data_dirs",
        metavar="DIR",
        help="data root laid out like shared/data/binance (repeatable; first wins on duplicates). "
        f"Default: {', '.join(str(d) for d in default_data_dirs()) or '(none found)'}",
    )
    parser.add_argument(
        "--faults",
        type=_faults_arg,
        default=None,
        metavar="JSON",
        help='initial faults: a JSON list, {"faults": [...]}, one fault object, or @file.json',
    )
    parser.add_argument(
        "--weight-limit",
        type=int,
        default=DEFAULT_WEIGHT_LIMIT,
        help=f"REQUEST_WEIGHT per minute before real 429s; 0 disables (default {DEFAULT_WEIGHT_LIMIT})",
    )
    parser.add_argument(
        "--limit-policy",
        choices=("error", "clamp"),
        default="error",
        help="limit > 1000: 400 -1130 (default) or clamp to 1000",
    )
    parser.add_argument("--log-level", default="warning")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server = ReplayServer(
        args.data_dirs,
        args.faults,
        host=args.host,
        port=args.port,
        weight_limit=args.weight_limit or None,
        limit_policy=args.limit_policy,
        log_level=args.log_level,
    )
    server.bind()
    print(json.dumps(server.urls()), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
