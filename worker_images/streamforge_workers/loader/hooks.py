"""The loader's seam to the runtime: interruptible waits and calls, and visible waits.

The HTTP and source modules only see `Hooks`, so they can be tested without Kafka: the
runtime's WorkerContext provides `wait` (interruptible sleep) and `check_stop`; `notify`
publishes a `loading` event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from streamforge_workers.loader.metrics import WAIT_SECONDS

T = TypeVar("T")
log = logging.getLogger("streamforge.loader")

# How often a blocking call (HTTP request, download) looks at the stop flag.
STOP_POLL_SECONDS = 0.2
# Long waits are slept in slices this long, with a heartbeat between them.
WAIT_SLICE_SECONDS = 1.0


def _sleep(seconds: float) -> None:
    time.sleep(max(0.0, seconds))


def _nothing() -> None:
    return None


def _no_beat(activity: str) -> None:
    return None


def _no_event(message: str, extra: dict[str, Any]) -> None:
    return None


@dataclass
class Hooks:
    wait: Callable[[float], None] = _sleep  # interruptible sleep; raises when a stop arrives
    check_stop: Callable[[], None] = _nothing  # raises when a stop has arrived
    notify: Callable[[str, dict[str, Any]], None] = _no_event  # a visible `loading` event
    # Called while waiting or blocked on I/O (the runtime's progress, rate-limited to one
    # `loading` event per 5 s), so a long wait never looks like a hung loader.
    heartbeat: Callable[[str], None] = _no_beat  # gets what the loader is waiting for
    stop_poll: float = field(default=STOP_POLL_SECONDS)

    def sleep(self, seconds: float, activity: str = "waiting to retry") -> None:
        """Interruptible sleep in slices, with heartbeats."""
        left = max(0.0, seconds)
        while left > 0:
            step = min(left, WAIT_SLICE_SECONDS)
            self.wait(step)
            left -= step
            self.heartbeat(f"{activity}, {left:.0f} s left")

    def pause(self, seconds: float, reason: str, activity: str) -> None:
        """Wait `seconds` (interruptibly), counted in metrics and announced as an event:
        "<activity>, waiting <seconds> s"."""
        seconds = max(0.0, seconds)
        message = f"{activity}, waiting {round(seconds, 1):g} s"
        extra = {"wait_seconds": round(seconds, 3), "reason": reason}
        log.warning(message, extra=extra)
        self.notify(message, extra)
        WAIT_SECONDS.labels(reason).inc(seconds)
        self.sleep(seconds, activity)

    def call(self, fn: Callable[[], T], activity: str = "waiting for a response") -> T:
        """Run a blocking call in a daemon thread, so a stop ends the wait for it within ~0.2 s.

        The abandoned call finishes (or times out) on its own; the process exits meanwhile.
        """
        self.check_stop()
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=target, name="loader-io", daemon=True).start()
        while not done.wait(self.stop_poll):
            self.check_stop()
            self.heartbeat(activity)
        if "error" in box:
            raise box["error"]
        return box["value"]
