"""The Airflow plugin of this package: the coverage page inside the Airflow UI.

Found through the `airflow.plugins` entry point (pyproject.toml), so wherever the package is
installed (the Airflow image, `make setup`) every Airflow component knows it; the api-server
mounts the FastAPI app at `/streamforge` and the UI shows it under Browse as an embedded view.
Importing this module does no I/O: the page measures coverage per request.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from streamforge.ui.coverage_page import URL_PREFIX, app


class StreamForgePlugin(AirflowPlugin):
    name = "streamforge"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "StreamForge coverage"}]
    external_views = [
        {
            "name": "Coverage",
            "href": f"{URL_PREFIX}/coverage",
            "destination": "nav",
            "category": "browse",
            "url_route": "streamforge-coverage",
        }
    ]
