"""The worker lifecycle shared by every component (ARCHITECTURE §5).

`run()` parses the configuration (exit 2, before any Kafka I/O), sets up JSON logs, metrics,
telemetry and the control listener, emits `started`, runs the body and ends with exactly one
terminal event and its exit code:

    body returns N          → `finished` (records_written=N)    exit 0
    Interrupted / stop      → `interrupted` (names the reason)   exit 3
    any other exception     → `error` (error_message=str(exc))   exit 1
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, NoReturn, TypeVar

from confluent_kafka import KafkaException
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from streamforge.contracts.config import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    RunEnv,
    load_settings,
)
from streamforge.contracts.messages import Command, Event, Status
from streamforge_workers.runtime.control import ControlListener
from streamforge_workers.runtime.logs import configure_logging
from streamforge_workers.runtime.metrics import RECORDS, MetricsServer, start_metrics_server
from streamforge_workers.runtime.telemetry import Telemetry

# `loading` events from ctx.progress() are at most this often (seconds). The env override
# exists for tests and demos.
PROGRESS_INTERVAL = float(os.environ.get("PROGRESS_INTERVAL", "5"))
READY_TIMEOUT = 10.0

S = TypeVar("S", bound=RunEnv)


class Interrupted(Exception):
    """The worker was asked to stop (stop command or SIGTERM/SIGINT)."""


class FatalError(Exception):
    """A clear, expected failure; the message becomes the `error` event's error_message."""


class WorkerContext:
    """What a body gets: settings, telemetry, the stop flag and helpers."""

    def __init__(
        self,
        settings: RunEnv,
        component: str,
        telemetry: Telemetry,
        control: ControlListener | None,
        log: logging.Logger,
        stop_requested: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.component = component
        self.telemetry = telemetry
        self.control = control
        self.log = log
        if stop_requested is None:
            stop_requested = control.stop_requested if control is not None else threading.Event()
        self.stop_requested = stop_requested
        self.records = 0  # highest cumulative count reported through progress() / the body
        # Merged into the `finished` event's extra (the loader's exchange gaps and repairs).
        self.result_extra: dict[str, Any] = {}
        self.signal_name: str | None = None
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last_progress: tuple[float, int] | None = None

    # -- stopping --------------------------------------------------------------------------
    def request_stop(self, signal_name: str) -> None:
        """Called from the signal handler."""
        if self.signal_name is None:
            self.signal_name = signal_name
        self.stop_requested.set()

    def stop_reason(self) -> tuple[str, dict[str, Any]]:
        """Human text + event extra describing why the worker stops."""
        cmd = self.control.stop_command if self.control is not None else None
        if cmd is not None:
            text = "stop command received" + (f" (reason: {cmd.reason})" if cmd.reason else "")
            return text, {"command": cmd.model_dump(mode="json")}
        if self.signal_name is not None:
            return f"received {self.signal_name}", {"signal": self.signal_name}
        return "interrupted", {}

    def check_stop(self) -> None:
        if self.stop_requested.is_set():
            raise Interrupted(self.stop_reason()[0])

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`; raises Interrupted as soon as a stop arrives."""
        if self.stop_requested.wait(max(0.0, seconds)):
            raise Interrupted(self.stop_reason()[0])

    # -- progress --------------------------------------------------------------------------
    def count(self, records: int) -> None:
        """Record a cumulative count (feeds streamforge_records_total) without an event."""
        with self._lock:
            records = int(records)
            if records > self.records:
                RECORDS.labels(self.component).inc(records - self.records)
                self.records = records

    def progress(self, records: int, message: str = "", **extra: Any) -> None:
        """Report the cumulative count; emits `loading` at most every PROGRESS_INTERVAL s."""
        self.count(records)
        now = time.monotonic()
        with self._lock:
            last_time, last_records = self._last_progress or (self._started, 0)
            if self._last_progress is not None and now - last_time < PROGRESS_INTERVAL:
                return
            self._last_progress = (now, int(records))
        elapsed = max(now - last_time, 1e-6)
        rate = round((int(records) - last_records) / elapsed, 1)
        self.telemetry.emit(
            Status.LOADING,
            message or f"{records} records",
            records_written=int(records),
            extra={"rate_per_s": rate, **extra},
        )


# -- argument parsing ------------------------------------------------------------------------
def env_help(settings_cls: type[BaseSettings], extra_env: dict[str, str] | None = None) -> str:
    """The environment variables of a settings class, for --help."""
    lines = ["environment variables:"]
    for name, field in settings_cls.model_fields.items():
        if field.is_required():
            note = "required"
        else:
            default = field.get_default(call_default_factory=True)
            if isinstance(default, Enum):
                default = default.value
            if default in (None, "") or isinstance(default, SecretStr):
                note = "optional"
            else:
                note = f"default {default}"
        lines.append(f"  {name.upper():<28} {note}")
    lines += [f"  {name:<28} {note}" for name, note in (extra_env or {}).items()]
    return "\n".join(lines)


def build_parser(
    prog: str,
    description: str,
    settings_cls: type[BaseSettings],
    extra_env: dict[str, str] | None = None,
) -> argparse.ArgumentParser:
    """argparse parser whose --help lists the env variables and exit codes."""
    exit_codes = "exit codes: 0 finished, 1 error, 2 bad configuration, 3 interrupted"
    paragraphs = [" ".join(p.split()) for p in description.split("\n\n")]
    return argparse.ArgumentParser(
        prog=prog,
        description="\n\n".join(textwrap.fill(p, 88, break_on_hyphens=False) for p in paragraphs if p),
        epilog=f"{env_help(settings_cls, extra_env)}\n\n{exit_codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# -- the lifecycle ----------------------------------------------------------------------------
def _is_interrupted(exc: BaseException) -> bool:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, Interrupted):
            return True
        todo += [current.__cause__, current.__context__]
        last_attempt = getattr(current, "last_attempt", None)  # tenacity.RetryError
        if last_attempt is not None and hasattr(last_attempt, "exception"):
            try:
                todo.append(last_attempt.exception())
            except Exception:  # noqa: S110 - best effort only
                pass
    return False


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, FatalError):
        return str(exc) or "fatal error"
    if isinstance(exc, SystemExit):
        return f"worker body exited with code {exc.code}"
    return str(exc) or type(exc).__name__


def _prog() -> str:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return f"python -m {spec.name.removesuffix('.__main__')}"
    return os.path.basename(sys.argv[0]) or "worker"


def _config_exit(message: str) -> NoReturn:
    print(f"configuration error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIG)


def run(
    component: str | Callable[[Any], str],
    settings_cls: type[S],
    body: Callable[[WorkerContext], int | None],
    argv: Sequence[str] | None = None,
    *,
    on_command: Callable[[WorkerContext, Command], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
    control: bool = True,
    description: str | None = None,
) -> NoReturn:
    """Run one worker process to its end and exit with its code (never returns).

    `component` may be a callable of the parsed settings (the sink's component depends on TYPE).
    `argv` (default sys.argv[1:]) is parsed for --help only; pass [] if the caller parsed its
    own flags. `on_command(ctx, cmd)` gets every command addressed to this worker (from the
    control thread); `on_event(event)` sees every emitted event; `control=False` runs without a
    control listener (dummy-service --noop).
    """
    name = component if isinstance(component, str) else settings_cls.__name__
    parser = build_parser(_prog(), description or f"StreamForge worker {name}", settings_cls)
    parser.parse_args(list(argv) if argv is not None else sys.argv[1:])

    settings = load_settings(settings_cls)
    comp = str(component if isinstance(component, str) else component(settings))
    try:
        configure_logging(
            settings.log_level,
            component=comp,
            queue_id=settings.queue_id,
            producer=settings.telemetry_producer_id,
        )
    except ValueError as exc:
        _config_exit(f"LOG_LEVEL: {exc}")
    log = logging.getLogger(f"streamforge.{comp}")
    # SecretStr fields serialise as "**********".
    log.debug("configuration", extra={"settings": settings.model_dump(mode="json")})
    code = _Lifecycle(comp, settings, body, log, on_command, on_event, control).execute()
    logging.shutdown()
    sys.exit(code)


class _Lifecycle:
    def __init__(
        self,
        component: str,
        settings: RunEnv,
        body: Callable[[WorkerContext], int | None],
        log: logging.Logger,
        on_command: Callable[[WorkerContext, Command], None] | None,
        on_event: Callable[[Event], None] | None,
        control: bool,
    ) -> None:
        self.component = component
        self.settings = settings
        self.body = body
        self.log = log
        self.on_command = on_command
        self.on_event = on_event
        self.use_control = control
        self.metrics: MetricsServer | None = None
        self._ctx: WorkerContext | None = None

    def execute(self) -> int:
        s = self.settings
        # Signals first: a SIGTERM during start-up still ends in one `interrupted` event.
        stop = threading.Event()
        signals: list[str] = []
        self._install_signals(stop, signals)
        self.metrics = start_metrics_server(s.metrics_port)
        try:
            telemetry = Telemetry(s, self.component, on_event=self.on_event)
        except KafkaException as exc:
            self._close_metrics()
            _config_exit(f"Kafka client settings: {exc}")

        ctx: WorkerContext
        listener = None
        if self.use_control:
            handler = None
            if self.on_command is not None:
                on_command = self.on_command

                def handler(cmd: Command) -> None:
                    on_command(ctx, cmd)

            listener = ControlListener(s, self.component, on_command=handler)
            listener.stop_requested = stop  # one flag for stop commands and signals
        ctx = WorkerContext(s, self.component, telemetry, listener, self.log, stop_requested=stop)
        self._ctx = ctx
        if signals and ctx.signal_name is None:
            ctx.signal_name = signals[0]
        try:
            if listener is not None:
                listener.start()
                if not listener.ready.wait(READY_TIMEOUT):
                    self.log.warning(
                        "control listener not ready after %.0f s; going on (commands are read from "
                        "QUEUE_CREATED_AT once it is)",
                        READY_TIMEOUT,
                    )
            code = self._run_body(ctx)
        finally:
            # Listener first: no pong can follow the terminal event.
            if listener is not None:
                listener.close()
            telemetry.close()
            self._close_metrics()
        return code

    def _run_body(self, ctx: WorkerContext) -> int:
        telemetry = ctx.telemetry
        telemetry.emit(Status.STARTED, f"{self.component} started")
        started = time.monotonic()
        try:
            ctx.check_stop()  # a stop sent before the worker started
            result = self.body(ctx)
            records = ctx.records if result is None else int(result)
            ctx.count(records)
            self._terminal(
                ctx,
                Status.FINISHED,
                f"{self.component} finished: {records} records in {time.monotonic() - started:.1f} s",
                records_written=records,
                extra={"duration_s": round(time.monotonic() - started, 3), **ctx.result_extra},
            )
            return EXIT_OK
        except BaseException as exc:
            if _is_interrupted(exc) or (isinstance(exc, KeyboardInterrupt) and ctx.stop_requested.is_set()):
                reason, extra = ctx.stop_reason()
                self.log.warning("interrupted: %s", reason)
                self._terminal(
                    ctx,
                    Status.INTERRUPTED,
                    f"{self.component} interrupted: {reason}",
                    records_written=ctx.records,
                    extra={"reason": reason, **extra},
                )
                return EXIT_INTERRUPTED
            text = _error_text(exc)
            self.log.error("failed: %s", text, exc_info=not isinstance(exc, FatalError))
            self._terminal(
                ctx,
                Status.ERROR,
                f"{self.component} failed",
                records_written=ctx.records,
                error_message=text,
                extra={"exception": type(exc).__name__},
            )
            return EXIT_ERROR

    def _terminal(self, ctx: WorkerContext, status: Status, message: str, **kwargs: Any) -> None:
        try:
            ctx.telemetry.emit(status, message, **kwargs)
        except Exception:
            self.log.exception("could not emit the %s event", status.value)

    def _install_signals(self, stop: threading.Event, signals: list[str]) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handle(signum: int, _frame: object) -> None:
            name = signal.Signals(signum).name
            ctx = self._ctx
            if ctx is not None:
                ctx.request_stop(name)
            else:
                signals.append(name)
                stop.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _close_metrics(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
