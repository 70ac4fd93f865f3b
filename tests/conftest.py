"""Test session wiring: every piece of real infrastructure is a fixture module here."""

import importlib.util

_FIXTURE_MODULES = [
    "tests.fixtures.kafka",
    "tests.fixtures.arango",
    "tests.fixtures.binance",
    "tests.fixtures.postgres",
]
# TEMPORARY while the fixture modules are being written; becomes a static list.
pytest_plugins = [m for m in _FIXTURE_MODULES if importlib.util.find_spec(m) is not None]
