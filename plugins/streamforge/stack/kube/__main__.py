"""python -m streamforge.stack.kube up|down|status|build

build   build (or find) the pinned binaries; prints their directory
up      start etcd, kube-apiserver, controller-manager, scheduler and one process-backed node
        labelled streamforge-worker=true; prints the admin kubeconfig; runs until Ctrl-C/`down`
down    stop a running `up` (SIGTERM to its pid)
status  is `up` running, and its nodes and pods
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

from streamforge.stack.kube.control_plane import ControlPlane, ensure_binaries
from streamforge.stack.paths import REPO_ROOT

HOME = REPO_ROOT / ".stack" / "kube"  # gitignored; logs stay after `down`
STATE = HOME / "state.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _state() -> dict[str, Any] | None:
    if not STATE.exists():
        return None
    state = json.loads(STATE.read_text())
    return state if _alive(state["pid"]) else None


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def up(node: str) -> int:
    if (state := _state()) is not None:
        print(f"already up (pid {state['pid']}): {state['admin_kubeconfig']}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    plane = ControlPlane(home=HOME / "cluster", log=lambda line: print(line, flush=True))
    try:
        plane.start()
        plane.add_node(node)
        info = {"pid": os.getpid(), **plane.info(), "node": node,
                "timings_s": {k: round(v, 1) for k, v in plane.timings.items()}}  # fmt: skip
        STATE.write_text(json.dumps(info, indent=2))
        print(json.dumps(info, indent=2))
        print(f"\nexport KUBECONFIG={plane.admin_kubeconfig}\nCtrl-C or `python -m streamforge.stack.kube down` "
              "to stop.", flush=True)  # fmt: skip
        while all(plane.running().values()):
            time.sleep(1)
        print(f"a component exited: {plane.running()}; logs in {plane.home / 'logs'}", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        plane.stop()
        STATE.unlink(missing_ok=True)


def down(timeout: float = 60) -> int:
    state = _state()
    if state is None:
        print("not running")
        return 0
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(state["pid"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _alive(state["pid"]):
        print(f"pid {state['pid']} still running after {timeout} s", file=sys.stderr)
        return 1
    print("stopped")
    return 0


def status() -> int:
    state = _state()
    if state is None:
        print("not running")
        return 3
    print(json.dumps(state, indent=2))
    plane = ControlPlane(home=HOME / "cluster")
    plane.bin_dir = ensure_binaries()
    print(plane.kubectl("get", "nodes,pods", "-A", "-o", "wide", check=False).stdout)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamforge.stack.kube", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start the control plane and a process-backed node")
    start.add_argument("--node", default="streamforge-worker-1")
    sub.add_parser("down", help="stop it")
    sub.add_parser("status", help="state, nodes and pods")
    sub.add_parser("build", help="build the pinned binaries (once) and print their directory")
    args = parser.parse_args(argv)
    HOME.mkdir(parents=True, exist_ok=True)
    if args.command == "up":
        return up(args.node)
    if args.command == "down":
        return down()
    if args.command == "status":
        return status()
    print(ensure_binaries())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
