"""dummy-service: the seed's simulator on the shared runtime.

Answers `ping` with a `pong` event, obeys `stop`, and can simulate loading, failures and
timed exits. Unlike the seed it ends with exactly one terminal event and serves its metrics.

Flags:
  --debug              DEBUG logs
  --noop               no control consumer: ping/stop are not read; waits for SIGTERM/SIGINT
                       (or --exit-after/--fail-after) and then ends
  --simulate-loading   a `loading` event every DUMMY_LOADING_INTERVAL s (default 10) with
                       records_written = 100 x batch
  --fail-after N       after N s: `error` event, exit 1
  --exit-on-ping       after answering the first ping: `finished`, exit 0
  --exit-after N       after N s: `finished`, exit 0
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Sequence

from prometheus_client import Counter, Gauge

from streamforge.contracts.config import EXIT_CONFIG, DummySettings
from streamforge.contracts.messages import Command, CommandName, Event, Status
from streamforge.contracts.names import Component
from streamforge_workers.runtime.worker import FatalError, WorkerContext, build_parser, run

LOADING_INTERVAL_ENV = "DUMMY_LOADING_INTERVAL"
DEFAULT_LOADING_INTERVAL = 10.0
RECORDS_PER_BATCH = 100
TICK = 0.1

# Lifecycle statuses tracked by dummy_status_last (a pong is an answer, not a state).
LIFECYCLE = (Status.STARTED, Status.LOADING, Status.FINISHED, Status.ERROR, Status.INTERRUPTED)

EVENTS = Counter("dummy_events_total", "Events emitted by dummy-service, by event status", ["event"])
PINGS = Counter("dummy_pings_total", "Ping commands received")
PONGS = Counter("dummy_pongs_total", "Pong events emitted")
ERRORS = Counter("dummy_errors_total", "Error events emitted")
STATUS_LAST = Gauge("dummy_status_last", "1 for the last lifecycle status, 0 for the others", ["status"])
for _status in Status:
    EVENTS.labels(_status.value)
for _status in LIFECYCLE:
    STATUS_LAST.labels(_status.value).set(0)


def record_event(event: Event) -> None:
    """on_event hook: metrics for every emitted event."""
    EVENTS.labels(event.status.value).inc()
    if event.status is Status.ERROR:
        ERRORS.inc()
    if event.status in LIFECYCLE:
        for status in LIFECYCLE:
            STATUS_LAST.labels(status.value).set(1 if status is event.status else 0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds >= 0")
    return value


class Dummy:
    def __init__(self, args: argparse.Namespace, loading_interval: float) -> None:
        self.args = args
        self.loading_interval = loading_interval
        self.ping_answered = threading.Event()

    def on_command(self, ctx: WorkerContext, cmd: Command) -> None:
        if cmd.command is not CommandName.PING:
            return  # stop is handled by the runtime
        PINGS.inc()
        ctx.telemetry.emit(
            Status.PONG,
            "pong",
            records_written=ctx.records,
            extra={"ping_sent_at": cmd.sent_at, "ponged_at": time.time()},
        )
        PONGS.inc()
        if self.args.exit_on_ping:
            self.ping_answered.set()

    def body(self, ctx: WorkerContext) -> int:
        args = self.args
        start = time.monotonic()
        fail_at = start + args.fail_after if args.fail_after is not None else None
        exit_at = start + args.exit_after if args.exit_after is not None else None
        next_loading = start + self.loading_interval if args.simulate_loading else None
        batch = 0
        ctx.log.info(
            "dummy-service running",
            extra={"flags": {k: v for k, v in vars(args).items() if v not in (None, False)}},
        )
        while True:
            ctx.check_stop()
            now = time.monotonic()
            if self.ping_answered.is_set():
                ctx.log.info("answered a ping; exiting (--exit-on-ping)")
                return ctx.records
            # Batches due before a timed end are emitted first, even if this wake-up came late.
            horizon = min(d for d in (now, fail_at, exit_at) if d is not None)
            while next_loading is not None and next_loading <= horizon:
                batch += 1
                ctx.count(batch * RECORDS_PER_BATCH)
                ctx.telemetry.emit(
                    Status.LOADING,
                    f"simulated loading batch {batch}",
                    records_written=ctx.records,
                    extra={"batch": batch},
                )
                next_loading += self.loading_interval
            if fail_at is not None and now >= fail_at:
                raise FatalError(f"Simulated failure triggered by --fail-after {args.fail_after:g}")
            if exit_at is not None and now >= exit_at:
                ctx.log.info("exiting after %g s (--exit-after)", args.exit_after)
                return ctx.records
            deadlines = [d for d in (fail_at, exit_at, next_loading) if d is not None]
            timeout = min([TICK, *(d - now for d in deadlines)])
            self.ping_answered.wait(max(timeout, 0.0))


def _loading_interval() -> float:
    raw = os.environ.get(LOADING_INTERVAL_ENV, "")
    if not raw.strip():
        return DEFAULT_LOADING_INTERVAL
    try:
        value = float(raw)
        if not 0 < value < float("inf"):
            raise ValueError
    except ValueError:
        print(
            f"configuration error: {LOADING_INTERVAL_ENV}: {raw!r} is not a number of seconds > 0",
            flush=True,
            file=sys.stderr,
        )
        raise SystemExit(EXIT_CONFIG) from None
    return value


def parser() -> argparse.ArgumentParser:
    p = build_parser(
        "python -m streamforge_workers.dummy_service",
        "StreamForge dummy-service: answers ping with pong, obeys stop, simulates a worker.",
        DummySettings,
        {LOADING_INTERVAL_ENV: f"default {DEFAULT_LOADING_INTERVAL:g} (seconds between loading events)"},
    )
    p.add_argument("--debug", action="store_true", help="DEBUG logs (overrides LOG_LEVEL)")
    p.add_argument(
        "--noop",
        action="store_true",
        help="no control consumer (ping/stop are not read); wait for SIGTERM, --exit-after or --fail-after",
    )
    p.add_argument(
        "--simulate-loading",
        action="store_true",
        help=f"emit a loading event every {LOADING_INTERVAL_ENV} s with records_written = 100 x batch",
    )
    p.add_argument("--fail-after", type=_seconds, metavar="N", help="after N seconds: error event, exit 1")
    p.add_argument("--exit-on-ping", action="store_true", help="finish after answering the first ping")
    p.add_argument("--exit-after", type=_seconds, metavar="N", help="after N seconds: finished event, exit 0")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    p = parser()
    args = p.parse_args(argv)
    if args.noop and args.exit_on_ping:
        p.error("--exit-on-ping needs the control consumer; it cannot be combined with --noop")
    interval = _loading_interval()
    if args.debug:
        os.environ["LOG_LEVEL"] = "DEBUG"
    dummy = Dummy(args, interval)
    run(
        Component.DUMMY.value,
        DummySettings,
        dummy.body,
        argv=[],
        on_command=dummy.on_command,
        on_event=record_event,
        control=not args.noop,
    )
