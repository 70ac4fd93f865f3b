# StreamForge developer commands. Everything runs from the repo's own virtualenv (.venv).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test test-fast lint demo bench schemas clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml worker_images/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	$(VENV)/bin/pip install -q --no-deps -e . -e worker_images
	$(PY) -m streamforge.stack.kafka resolve
	touch $@

setup: $(VENV)/.installed ## create .venv, install the pinned lock, fetch the Kafka broker jars

test: setup ## the whole suite against real Kafka, PostgreSQL, Airflow and the test servers
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup ## unit tests only (no services)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

demo: setup ## README command 1: backfill BTCUSDT 1m 2020-01-01..03 through Airflow, offline
	$(VENV)/bin/streamforge demo

bench: setup
	$(PY) -m bench workers
	$(PY) -m bench airflow

schemas: setup ## regenerate the shipped JSON Schemas from the pydantic models
	$(PY) -m streamforge.contracts write-schemas

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
