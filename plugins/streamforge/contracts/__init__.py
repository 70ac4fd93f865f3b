"""Contracts shared by the Airflow side and the workers: names, messages, records, config.

This package is the single source of truth; nothing here imports Airflow or Kafka clients.
"""
