#!/usr/bin/env bash
# Inside the dev container, once: the workspace's .venv is the image's pre-built venv (the
# pinned dev lock), then the project's own setup (Makefile `setup`): both packages editable and
# the Kafka broker jars the test harness uses. An existing .venv is left alone.
set -euo pipefail
cd /workspaces/streamforge
[ -e .venv ] || ln -s "$HOME/venv" .venv
make setup
echo "ready: $(.venv/bin/python --version); stack: Kafka ${KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}," \
     "ArangoDB ${ARANGO_URL:-http://arangodb:8529}, Airflow http://airflow:8080"
