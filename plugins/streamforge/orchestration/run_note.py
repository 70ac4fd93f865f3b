"""A run's note (the DagRun note shown in the grid view), written by `verify`.

The Task SDK has no call to change the note of a running DagRun, so it goes through Airflow's
public REST API (`PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}`) with the credentials of the
Airflow connection `streamforge_airflow_api` (type http: host, port, schema, login, password).
Without that connection (e.g. under `dag.test`) the note is only logged and kept in the verify
report: a note never fails a run.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from streamforge.contracts.gaps import Gap, Repair

log = logging.getLogger(__name__)

AIRFLOW_API_CONN_ID = "streamforge_airflow_api"
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def note_text(gaps: list[Gap], repairs: list[Repair], reason: str | None = None) -> str | None:
    """Markdown for the run note, or None when there is nothing to say."""
    lines = []
    if reason:
        lines.append(f"**0 records**: {reason}")
    for gap in gaps:
        lines.append(f"**exchange gap** {gap.describe()}, confirmed by {gap.confirmed_by.value}")
    for repair in repairs:
        lines.append(f"**repaired from REST** {repair.describe()} (missing in the archive file)")
    return "\n\n".join(lines) or None


def set_run_note(dag_id: str, run_id: str, text: str, conn_id: str = AIRFLOW_API_CONN_ID) -> bool:
    """Write the note; False (and a warning) when it cannot be written."""
    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.warning("no Airflow connection %r: run note not set (%s)", conn_id, text.replace("\n\n", "; "))
        return False
    base = f"{conn.schema or 'http'}://{conn.host}" + (f":{conn.port}" if conn.port else "")
    try:
        with httpx.Client(base_url=base, timeout=TIMEOUT) as http:
            token = http.post("/auth/token", json={"username": conn.login, "password": conn.password})
            token.raise_for_status()
            resp = http.patch(
                f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}",
                params={"update_mask": "note"},
                json={"note": text},
                headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            )
            resp.raise_for_status()
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        log.warning("run note not set through %s: %s", base, exc)
        return False
    log.info("run note set: %s", text.replace("\n\n", "; "))
    return True
