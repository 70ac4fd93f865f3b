"""A tiny supervisor for a local worker: runs the command, records its exit code, enforces a deadline.

    python -m streamforge.orchestration.supervise --exit-file F --kill-at ISO -- CMD...

The local runner's task only checks on the worker now and then (reschedule mode), so something
must outlive the task process to collect the worker's exit code: this process. SIGTERM to it is
forwarded to the worker (which stops cleanly: `interrupted`, exit 3). Imports nothing heavy.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

GRACE_SECONDS = 30.0


def write_exit(path: Path, code: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(code))
    os.replace(tmp, path)  # readers never see a half-written file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamforge-supervise")
    parser.add_argument("--exit-file", type=Path, required=True)
    parser.add_argument("--kill-at", type=datetime.fromisoformat, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    timeout = max((args.kill_at - datetime.now(UTC)).total_seconds(), 0.0)
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"streamforge-supervise: still running at {args.kill_at.isoformat()}: SIGTERM", flush=True)
        child.send_signal(signal.SIGTERM)
        try:
            code = child.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
    write_exit(args.exit_file, code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
