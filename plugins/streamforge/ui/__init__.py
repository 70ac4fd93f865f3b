"""The Airflow UI part of StreamForge: the coverage page (an Airflow 3 plugin, see plugin.py)."""
