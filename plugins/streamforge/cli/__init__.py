"""`streamforge`: the product's command line (console script, see pyproject.toml).

    streamforge up | down | status | demo     the local stack (stack.py)
    streamforge catalog validate FILE         the pipeline catalog (catalog.py)
    streamforge topics gc [--yes]             leaked per-run data topics (topics.py)
    streamforge coverage [--pipeline P] [--json]  the declared history, day by day (coverage.py)

Adding a command group is one line: write `cli/<group>.py` holding `app = typer.Typer(...)`
with its commands, and add `"<group>"` to GROUPS below; `streamforge <group> ...` then runs
them. (Commands of the `stack` module sit at the top level instead: `streamforge up`.)
"""

from __future__ import annotations

import importlib

import typer

GROUPS = ("catalog", "topics", "coverage")  # modules of this package, each with a `typer.Typer` named app

app = typer.Typer(
    name="streamforge",
    help="StreamForge: Binance market data through Kafka into ArangoDB, orchestrated by Apache Airflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from streamforge.cli import stack

    for command in stack.COMMANDS:
        app.command()(command)
    for group in GROUPS:
        app.add_typer(importlib.import_module(f"streamforge.cli.{group}").app, name=group)


_register()


def main() -> None:
    app()
