"""StreamForge Airflow DAGs: one per (symbol, data type) of streamforge_catalog.yaml.

Thin on purpose: the DAG factory lives in the installed `streamforge.orchestration` package
(which the triggerer imports too). Set STREAMFORGE_CATALOG to use another catalog file.
"""

from pathlib import Path

from streamforge.orchestration.factory import register_dags

register_dags(globals(), Path(__file__).with_name("streamforge_catalog.yaml"))
