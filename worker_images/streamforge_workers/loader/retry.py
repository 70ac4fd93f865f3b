"""Bounded exponential retries of transient HTTP failures (tenacity), every wait visible.

Transient: 5xx, timeouts, connection errors, truncated or unparsable bodies. Anything else
(a 4xx, a checksum mismatch, bad data) is raised at once. After the last attempt the failure
becomes a FatalError naming the request and the last problem.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from streamforge_workers.loader.hooks import Hooks, log
from streamforge_workers.loader.metrics import HTTP_RETRIES, WAIT_SECONDS
from streamforge_workers.runtime.worker import FatalError

T = TypeVar("T")

ATTEMPTS = 5
WAIT_MIN, WAIT_MAX = 0.5, 8.0


class Transient(Exception):
    """A failure worth another attempt; `reason` labels metrics and events."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def classify(exc: httpx.TransportError) -> Transient:
    """httpx transport failures → Transient with a short reason."""
    if isinstance(exc, httpx.TimeoutException):
        return Transient("timeout", f"timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.RemoteProtocolError):
        return Transient("truncated", f"connection closed mid-response ({exc})")
    return Transient("connection", f"connection failed ({type(exc).__name__}: {exc})")


def with_retries(
    fn: Callable[[], T],
    hooks: Hooks,
    what: str,
    *,
    attempts: int = ATTEMPTS,
    wait_min: float = WAIT_MIN,
    wait_max: float = WAIT_MAX,
) -> T:
    """Call `fn`, retrying `Transient` failures with exponential back-off (interruptible)."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = exc.reason if isinstance(exc, Transient) else "error"
        seconds = state.next_action.sleep if state.next_action else 0.0
        message = f"{what} failed: {exc}; retry {state.attempt_number}/{attempts - 1} in {seconds:g} s"
        extra = {"wait_seconds": round(seconds, 3), "reason": reason, "attempt": state.attempt_number}
        log.warning(message, extra=extra)
        hooks.notify(message, extra)
        HTTP_RETRIES.labels(reason).inc()
        WAIT_SECONDS.labels(reason).inc(seconds)

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=wait_min, min=wait_min, max=wait_max),
        retry=retry_if_exception_type(Transient),
        sleep=hooks.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except Transient as exc:
        raise FatalError(f"{what} failed after {attempts} attempts: {exc}") from exc
