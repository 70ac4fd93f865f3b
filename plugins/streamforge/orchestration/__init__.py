"""The Airflow side of StreamForge: catalog, DAG factory, runners, outcome sensor, alerts.

Importing this package is cheap and imports no Airflow: the catalog CLI and the DAG file's
first import must not pay for it. Each submodule imports what it needs.
"""
