"""The log policy of every StreamForge Kafka client (workers and the outcome trigger alike).

With its broker down, a librdkafka client logs "Connect to … failed: Connection refused" on
every reconnect attempt, about 20 lines a second per client, which buries a worker's own log
under thousands of identical lines during an outage. So each kind of line (the text with its
numbers blanked: client names, ports, timings) is logged the first time it occurs; repeats are
counted, and the next one after SUMMARY_SECONDS is logged with that count.

    Consumer(config | {"logger": kafka_client_logger()})

(confluent-kafka calls the `logger` config's `.log(level, fmt, *args)` for every librdkafka
log line; a filter on that logger decides which get through.)
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable

LOGGER_NAME = "librdkafka"
SUMMARY_SECONDS_ENV = "KAFKA_LOG_SUMMARY_SECONDS"
DEFAULT_SUMMARY_SECONDS = 30.0
# Kinds remembered at most (a client that logs ever-new texts must not grow memory forever).
_MAX_KINDS = 1000
_NUMBERS = re.compile(r"\d+")


def summary_seconds() -> float:
    """$KAFKA_LOG_SUMMARY_SECONDS, else 30; a bad value is an error, not a silent default."""
    raw = os.environ.get(SUMMARY_SECONDS_ENV, "").strip()
    if not raw:
        return DEFAULT_SUMMARY_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{SUMMARY_SECONDS_ENV}={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"{SUMMARY_SECONDS_ENV} must be > 0, not {raw}")
    return value


class RepeatFilter(logging.Filter):
    """Let the first line of a kind through, then one line per `every` seconds with the count."""

    def __init__(self, every: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every = summary_seconds() if every is None else every
        self._clock = clock
        self._lock = threading.Lock()
        self._kinds: dict[str, tuple[float, int]] = {}  # kind -> (last logged at, repeats since)

    def filter(self, record: logging.LogRecord) -> bool:
        kind = _NUMBERS.sub("#", record.getMessage())
        now = self._clock()
        with self._lock:
            logged_at, repeats = self._kinds.get(kind, (None, 0))
            if logged_at is not None and now - logged_at < self.every:
                self._kinds[kind] = (logged_at, repeats + 1)
                return False
            if len(self._kinds) >= _MAX_KINDS:
                self._kinds.clear()
            self._kinds[kind] = (now, 0)
        if repeats:
            record.msg = f"{record.getMessage()} (repeated {repeats} times in the last {now - logged_at:.0f} s)"
            record.args = None
            record.repeats = repeats
        return True


_install_lock = threading.Lock()


def kafka_client_logger(name: str = LOGGER_NAME) -> logging.Logger:
    """The logger to pass as a client's `logger` config: librdkafka's lines, rate-limited."""
    logger = logging.getLogger(name)
    with _install_lock:
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(RepeatFilter())
    return logger
