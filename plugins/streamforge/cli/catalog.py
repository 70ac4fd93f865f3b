"""`streamforge catalog validate`: check a catalog file before deploying it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="The pipeline catalog (dags/streamforge_catalog.yaml).", no_args_is_help=True)


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="the catalog file")],
    list_dags: Annotated[bool, typer.Option("--list", help="print the DAG ids it defines")] = False,
) -> None:
    """Validate FILE; exit 1 naming the bad entry and field."""
    from streamforge.orchestration.catalog import CatalogError, read_catalog

    try:
        catalog = read_catalog(file)
    except CatalogError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if list_dags:
        for spec in catalog.dags:
            typer.echo(spec.dag_id)
    runners = sorted({spec.settings.runner.value for spec in catalog.dags})
    typer.echo(f"{file}: OK, {len(catalog.dags)} DAGs (runner {', '.join(runners) or '-'})")
