"""The few calls of Airflow's public REST API (`/api/v2`) that coverage and the sweeper make.

One client for every caller: the CLI (a URL and a user), the maintenance DAGs (the Airflow
connection `streamforge_airflow_api`, type http: host, port, schema, login, password) and the
coverage page (the viewer's own token, so Airflow's permissions apply to what it shows).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Literal
from urllib.parse import quote

import httpx

AIRFLOW_API_CONN_ID = "streamforge_airflow_api"
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
PAGE = 100

Reprocess = Literal["none", "failed", "completed"]


class AirflowApiError(RuntimeError):
    """Airflow answered with an error; the message holds the call and Airflow's answer."""


class AirflowApi:
    """:param base_url: Airflow's base URL (the api-server), e.g. http://airflow:8080
    :param token: a JWT to send as Bearer token (else `username`/`password` get one from /auth/token)
    """

    def __init__(
        self, base_url: str, *, token: str | None = None, username: str | None = None, password: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._login = (username, password)
        self._http: httpx.Client | None = None

    @classmethod
    def from_connection(cls, conn_id: str = AIRFLOW_API_CONN_ID) -> AirflowApi:
        """From an Airflow connection (inside a task)."""
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
        base = f"{conn.schema or 'http'}://{conn.host}" + (f":{conn.port}" if conn.port else "")
        return cls(base, username=conn.login, password=conn.password)

    def __enter__(self) -> AirflowApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            if self._token is None:
                username, password = self._login
                response = httpx.post(f"{self.base_url}/auth/token", json={"username": username, "password": password},
                                      timeout=TIMEOUT)  # fmt: skip
                _check(response)
                self._token = response.json()["access_token"]
            headers = {"Authorization": f"Bearer {self._token}"}
            self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=TIMEOUT)
        return self._http

    # --- reads ------------------------------------------------------------------------------

    def dag_exists(self, dag_id: str) -> bool:
        response = self.http.get(f"/api/v2/dags/{quote(dag_id, safe='')}")
        if response.status_code == 404:
            return False
        _check(response)
        return True

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of the DAG (none when the DAG does not exist)."""
        return self._paged(f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns", "dag_runs")

    def backfills(self, dag_id: str) -> list[dict[str, Any]]:
        return self._paged("/api/v2/backfills", "backfills", {"dag_id": dag_id})

    def active_backfill(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG's backfill that has not completed yet (Airflow allows one at a time)."""
        return next((b for b in self.backfills(dag_id) if not b.get("completed_at")), None)

    # --- writes -----------------------------------------------------------------------------

    def create_backfill(
        self,
        dag_id: str,
        first: date,
        last: date,
        *,
        reprocess: Reprocess = "completed",
        max_active_runs: int = 4,
        conf: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST /api/v2/backfills for the logical dates first..last (both included)."""
        body = {
            "dag_id": dag_id,
            "from_date": f"{first.isoformat()}T00:00:00Z",
            "to_date": f"{last.isoformat()}T00:00:00Z",
            "run_backwards": False,
            "dag_run_conf": dict(conf or {}),
            "reprocess_behavior": reprocess,
            "max_active_runs": max_active_runs,
        }
        return _check(self.http.post("/api/v2/backfills", json=body))

    def _paged(self, path: str, key: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            response = self.http.get(path, params={**(params or {}), "limit": PAGE, "offset": len(items)})
            if response.status_code == 404:
                return items
            page = _check(response)[key]
            items.extend(page)
            if len(page) < PAGE:
                return items


def _check(response: httpx.Response) -> Any:
    if response.is_error:
        raise AirflowApiError(
            f"{response.request.method} {response.request.url.path} -> {response.status_code}: {response.text[:500]}"
        )
    return response.json() if response.content else None
