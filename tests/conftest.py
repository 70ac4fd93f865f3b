"""Test session wiring: a private Airflow home, and every piece of real infrastructure as a fixture."""

import os
import tempfile
from pathlib import Path

# Airflow reads its home and config on first import: never touch ~/airflow or a developer's
# metadata DB. Set before any test module can import Airflow.
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="streamforge-airflow-home-")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(Path(__file__).resolve().parents[1] / "dags"))

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.arango",
    "tests.fixtures.binance",
    "tests.fixtures.postgres",
    "tests.fixtures.airflow",
    "tests.fixtures.kube",
]
