"""StreamForge maintenance Airflow DAGs: `streamforge__coverage` and `streamforge__sweeper`.

Thin on purpose: both live in the installed package (streamforge.orchestration.maintenance)
and read the same catalog as the pipelines (STREAMFORGE_CATALOG overrides it).
"""

from pathlib import Path

from streamforge.orchestration.maintenance import register_maintenance_dags

register_maintenance_dags(globals(), Path(__file__).with_name("streamforge_catalog.yaml"))
