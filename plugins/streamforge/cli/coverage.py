"""`streamforge coverage [--pipeline ...] [--json]`: what history each pipeline holds, day by day.

States (orchestration/coverage.py): complete, with gaps (complete apart from recorded exchange
gaps), partial, failed, missing, not listed. Reads the catalog, ArangoDB and Airflow's REST API:
those of the running `streamforge up` stack by default, or the ones given as options.
"""

from __future__ import annotations

import json
import shlex
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Coverage of the declared history: per pipeline and day.")


def _stack_settings(state_dir: Path | None) -> dict[str, Any]:
    """Airflow and ArangoDB of the local stack (`streamforge up`), from its state and CLI env files."""
    from streamforge.cli.topics import _local_stack

    stack = _local_stack(state_dir)
    exports = {}
    for line in Path(stack["airflow_cli_env"]).read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        exports[key] = shlex.split(value)[0] if value else ""
    arango = json.loads(exports["AIRFLOW_CONN_STREAMFORGE_ARANGO"])
    protocol = arango.get("extra", {}).get("protocol", "http")
    return {
        "airflow_url": stack["airflow_ui"],
        "airflow_user": stack["airflow_user"],
        "airflow_password": json.loads(Path(stack["airflow_passwords_file"]).read_text())[stack["airflow_user"]],
        "arango_url": f"{protocol}://{arango['host']}:{arango.get('port', 8529)}",
        "arango_database": arango.get("schema") or "streamforge",
        "arango_user": arango.get("login") or "root",
        "arango_password": arango.get("password") or "",
        "catalog": stack["catalog"],
    }


@app.callback(invoke_without_command=True)
def coverage(
    pipeline: Annotated[
        list[str] | None,
        typer.Option("--pipeline", "-p", help="DAG id, symbol, data type or catalog pipeline name (repeatable)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="every day as JSON instead of the table")] = False,
    state_dir: Annotated[Path | None, typer.Option(help="the `streamforge up` stack (default .stack/up)")] = None,
    catalog: Annotated[Path | None, typer.Option(help="catalog file (instead of the local stack's)")] = None,
    airflow_url: Annotated[str | None, typer.Option(help="Airflow's base URL (instead of a local stack)")] = None,
    airflow_user: Annotated[str, typer.Option(help="user for --airflow-url")] = "admin",
    airflow_password_file: Annotated[Path | None, typer.Option(help="file holding that user's password")] = None,
    arango_url: Annotated[str | None, typer.Option(help="ArangoDB URL (with --airflow-url)")] = None,
    arango_database: Annotated[str, typer.Option(help="database of the data")] = "streamforge",
    arango_user: Annotated[str, typer.Option(help="user for --arango-url")] = "root",
    arango_password_file: Annotated[Path | None, typer.Option(help="file holding that user's password")] = None,
    today: Annotated[str | None, typer.Option(help="measure as of this UTC date (default: today)")] = None,
) -> None:
    """Per pipeline with declared history: a calendar of day states and their totals (or --json)."""
    from streamforge.orchestration.airflow_api import AirflowApi
    from streamforge.orchestration.catalog import CatalogError, read_catalog
    from streamforge.orchestration.coverage import measure_catalog
    from streamforge.orchestration.verify import open_database

    if airflow_url:
        if not (arango_url and catalog):
            raise typer.BadParameter("--airflow-url needs --arango-url and --catalog as well")
        settings = {
            "airflow_url": airflow_url,
            "airflow_user": airflow_user,
            "airflow_password": airflow_password_file.read_text().strip() if airflow_password_file else "",
            "arango_url": arango_url,
            "arango_database": arango_database,
            "arango_user": arango_user,
            "arango_password": arango_password_file.read_text().strip() if arango_password_file else "",
            "catalog": str(catalog),
        }
    else:
        settings = _stack_settings(state_dir) | ({"catalog": str(catalog)} if catalog else {})
    try:
        specs = read_catalog(settings["catalog"]).dags
    except CatalogError as exc:
        raise typer.BadParameter(str(exc)) from None
    db = open_database(settings["arango_url"], settings["arango_database"], settings["arango_user"],
                       settings["arango_password"])  # fmt: skip
    with AirflowApi(settings["airflow_url"], username=settings["airflow_user"],
                    password=settings["airflow_password"]) as api:  # fmt: skip
        coverages = measure_catalog(specs, lambda _conn: db, api.dag_runs,
                                    date.fromisoformat(today) if today else None, pipeline or ())  # fmt: skip
    if pipeline and not coverages:
        raise typer.BadParameter(f"no pipeline with declared history matches {', '.join(pipeline)}")
    if as_json:
        typer.echo(json.dumps([c.model_dump(mode="json") for c in coverages], indent=2))
        return
    if not coverages:
        typer.echo("no pipeline of the catalog declares history (catalog `history`)")
        return
    for cov in coverages:
        typer.echo(table(cov))


def table(cov: Any) -> str:
    """A pipeline's days as a table, then the totals."""
    lines = [f"{cov.dag_id}  ({cov.symbol} {cov.data_type}, layout {cov.collection_layout.value})"]
    lines.append(f"  {'day':<10}  {'state':<10}  {'stored':>8}  {'expected':>8}  run")
    for d in cov.days:
        expected = "-" if d.expected is None else str(d.expected)
        run = f"{d.run.run_id} ({d.run.state})" if d.run else "-"
        lines.append(f"  {d.day!s:<10}  {d.state.label:<10}  {d.stored:>8}  {expected:>8}  {run}")
    totals = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in cov.totals().items() if n)
    lines.append(f"  {len(cov.days)} day(s): {totals or 'none'}")
    return "\n".join(lines)
