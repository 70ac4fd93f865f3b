"""The coverage page: a calendar heat-map per symbol x type, served inside Airflow's api-server.

`GET /streamforge/coverage` (HTML, embedded in the UI by plugin.py) and
`GET /streamforge/coverage.json` (the same data). Only signed-in users get it: the viewer's
own Airflow token (the UI's cookie, or a Bearer header) authenticates the page and is the
token its REST calls for run states carry, so Airflow's permissions apply. ArangoDB is read
through each pipeline's Airflow connection; nothing is written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from streamforge.ui.heatmap import render_page

log = logging.getLogger(__name__)

URL_PREFIX = "/streamforge"
CATALOG_NAME = "streamforge_catalog.yaml"

app = FastAPI(title="StreamForge coverage", docs_url=None, redoc_url=None, openapi_url=None)


async def viewer_token(request: Request) -> str:
    """The signed-in viewer's Airflow JWT (401/403 otherwise)."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    await resolve_user_from_token(token)  # raises 401 / 403
    assert token is not None
    return token


Token = Annotated[str, Depends(viewer_token)]
Pipelines = Annotated[list[str] | None, Query(alias="pipeline", description="DAG id, symbol, type or pipeline")]


def _airflow_base(request: Request) -> str:
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="") or ""
    return base.rstrip("/") if base.startswith("http") else f"{request.url.scheme}://{request.url.netloc}"


def _measure(request: Request, token: str, pipelines: list[str] | None) -> tuple[list[Any], str]:
    from airflow.configuration import conf
    from airflow.models.connection import Connection

    from streamforge.orchestration.airflow_api import AirflowApi
    from streamforge.orchestration.catalog import load_catalog
    from streamforge.orchestration.connections import arango_database, arango_url
    from streamforge.orchestration.coverage import measure_catalog
    from streamforge.orchestration.verify import open_database

    def db_for(conn_id: str) -> Any:
        c = Connection.get_connection_from_secrets(conn_id)
        return open_database(arango_url(c), arango_database(c), c.login, c.password)

    base = _airflow_base(request)
    catalog = load_catalog(Path(conf.get("core", "dags_folder")) / CATALOG_NAME)
    with AirflowApi(base, token=token) as api:
        return measure_catalog(catalog.dags, db_for, api.dag_runs, only=pipelines or ()), base


@app.get("/coverage", response_class=HTMLResponse)
def coverage_page(request: Request, token: Token, pipeline: Pipelines = None) -> HTMLResponse:
    try:
        coverages, base = _measure(request, token, pipeline)
    except Exception as exc:  # shown on the page: the view must say why it is empty
        log.exception("coverage page")
        raise HTTPException(status_code=502, detail=f"coverage could not be measured: {exc}") from exc
    return HTMLResponse(render_page(coverages, base))


@app.get("/coverage.json")
def coverage_json(request: Request, token: Token, pipeline: Pipelines = None) -> JSONResponse:
    coverages, _ = _measure(request, token, pipeline)
    return JSONResponse([c.model_dump(mode="json") for c in coverages])
