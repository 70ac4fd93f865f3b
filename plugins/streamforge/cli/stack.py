"""`streamforge up | down | status | demo`: the whole stack on one machine (streamforge.stack.local).

`up` runs in the foreground until Ctrl-C or `streamforge down`. While it runs, its state folder
holds `stack.json` (pid and endpoints, mode 0600) that `down` and `status` read. Without
`--state-dir` the folder is `.stack/up` in the repository and is emptied at each `up`; with it,
Kafka's data, the Airflow metadata DB and the embedded ArangoDB's documents survive `down`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from streamforge.stack.paths import REPO_ROOT

DEFAULT_HOME = REPO_ROOT / ".stack" / "up"


class KafkaListener(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SASL_SSL = "SASL_SSL"


STATE_FILE = "stack.json"

StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="keep the stack's data here across down/up (default: .stack/up, not kept)"),
]


def _home(state_dir: Path | None) -> Path:
    return (state_dir or DEFAULT_HOME).resolve()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def up(
    state_dir: StateDir = None,
    live: Annotated[bool, typer.Option("--live", help="workers call the real Binance (needs internet)")] = False,
    scheduled: Annotated[bool, typer.Option("--scheduled", help="let the scheduler create the daily runs")] = False,
    parallelism: Annotated[int, typer.Option(help="Airflow's core.parallelism")] = 8,
    kafka_protocol: Annotated[
        KafkaListener, typer.Option(help="listener of the streamforge_kafka connection (SASL_SSL: SCRAM-SHA-512)")
    ] = KafkaListener.PLAINTEXT,
    kafka_bootstrap: Annotated[
        str | None, typer.Option(help="use this Kafka instead of starting one (bootstrap servers)")
    ] = None,
    kafka_config: Annotated[
        Path | None,
        typer.Option(help="JSON file of librdkafka settings for --kafka-bootstrap (security.protocol, sasl.*, ssl.*)"),
    ] = None,
    arango_url: Annotated[
        str | None, typer.Option(help="use this ArangoDB instead of the embedded ArangoDB-compatible server")
    ] = None,
    arango_user: Annotated[str, typer.Option(help="user for --arango-url")] = "root",
    arango_password_file: Annotated[
        Path | None, typer.Option(help="file holding the password for --arango-url")
    ] = None,
) -> None:
    """Start Kafka, ArangoDB, the Binance replay, PostgreSQL and Airflow; print the UI URL; run until Ctrl-C."""
    from streamforge.stack.local import ArangoTarget, ExternalKafka, LocalStack

    home = _home(state_dir)
    running = _read_state(home)
    if running and _alive(running["pid"]):
        raise typer.BadParameter(f"a stack already runs from {home} (pid {running['pid']}): streamforge down first")
    if state_dir is None:
        shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    kafka = None
    if kafka_bootstrap:
        settings = json.loads(kafka_config.read_text()) if kafka_config else {}
        kafka = ExternalKafka({**settings, "bootstrap.servers": kafka_bootstrap})
    elif kafka_config:
        raise typer.BadParameter("--kafka-config needs --kafka-bootstrap")
    arango = None
    if arango_url:
        password = arango_password_file.read_text().strip() if arango_password_file else ""
        arango = ArangoTarget(arango_url, arango_user, password)

    # Also SIGINT: a shell starting us in the background may have set it to "ignore".
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    stack = LocalStack(
        live=live,
        scheduled=scheduled,
        parallelism=parallelism,
        home=home,
        persistent=state_dir is not None,
        kafka=kafka,
        kafka_protocol=kafka_protocol.value,  # type: ignore[arg-type]
        arango=arango,
        log=typer.echo,
    )
    state = home / STATE_FILE
    try:
        stack.start()
        info = {"pid": os.getpid(), "home": str(home), "persistent": stack.persistent, **stack.endpoints()}
        state.touch(mode=0o600)
        state.write_text(json.dumps(info, indent=2))
        typer.echo(json.dumps(info, indent=2))
        typer.echo(f"\nAirflow UI: {info['airflow_ui']}  (user {info['airflow_user']}, password in "
                   f"{info['airflow_passwords_file']})")  # fmt: skip
        typer.echo(f"Logs: {info['airflow_home']}\nCtrl-C or `streamforge down` to stop.")
        assert stack.airflow is not None
        while stack.airflow.running():
            time.sleep(1)
        typer.echo("an Airflow component exited; see its log in the folder above", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo("stopping...")
    finally:
        state.unlink(missing_ok=True)
        stack.stop()


def down(
    state_dir: StateDir = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the stack to stop")] = 120,
) -> None:
    """Stop the stack that `streamforge up` runs from this state folder."""
    home = _home(state_dir)
    state = _read_state(home)
    if not state or not _alive(state["pid"]):
        typer.echo(f"no stack runs from {home}")
        return
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(state["pid"]):
        if time.monotonic() > deadline:
            typer.echo(f"stack (pid {state['pid']}) still running after {timeout:.0f}s", err=True)
            raise typer.Exit(1)
        time.sleep(0.5)
    typer.echo(f"stopped the stack of {home}" + (" (data kept)" if state.get("persistent") else ""))


def status(state_dir: StateDir = None) -> None:
    """Show whether a stack runs from this state folder, its endpoints and Airflow's health; exit 1 if none."""
    import httpx

    home = _home(state_dir)
    state = _read_state(home)
    if not state or not _alive(state["pid"]):
        typer.echo(f"no stack runs from {home}")
        raise typer.Exit(1)
    try:
        health = httpx.get(f"{state['airflow_ui']}/api/v2/monitor/health", timeout=10).json()
        parts = {name: part.get("status") for name, part in health.items() if isinstance(part, dict)}
    except (httpx.HTTPError, ValueError) as exc:
        parts = {"api-server": f"unreachable ({exc})"}
    typer.echo(json.dumps({**state, "airflow_health": parts}, indent=2))


def demo(
    live: Annotated[bool, typer.Option("--live", help="load from the real Binance (needs internet)")] = False,
    max_active_runs: Annotated[int, typer.Option(help="the backfill's max_active_runs")] = 3,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the backfill")] = 600,
    keep: Annotated[bool, typer.Option("--keep", help="keep the stack's files (logs) after the demo")] = False,
) -> None:
    """The main job: a real Airflow backfill of BTCUSDT 1m 2020-01-01..03, offline; exit 0 if all days are complete."""
    from streamforge.stack.demo import run

    raise typer.Exit(run(live=live, max_active_runs=max_active_runs, timeout=timeout, keep=keep))


COMMANDS = (up, down, status, demo)


def _read_state(home: Path) -> dict[str, Any] | None:
    try:
        return json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child its parent has not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
