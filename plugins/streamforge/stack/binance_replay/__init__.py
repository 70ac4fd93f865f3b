"""Binance-compatible replay HTTP server over real market data, with fault injection.

Test/dev tooling: serves ``/api/v3/{ping,time,exchangeInfo,klines,aggTrades}`` and the
data.binance.vision archive layout (``/data/spot/daily/klines/...``,
``/data/futures/cm/daily/aggTrades/...``) from the real files in ``data/binance`` beside this package
and ``../shared/data/binance`` (see ``catalog.py``), and injects faults configured at
start or at runtime through ``/_replay/faults`` (see ``faults.py``).

Run it: ``python -m streamforge.stack.binance_replay --port 0`` (prints the URLs as JSON), or
``ReplayServer().start()`` in-process, or the ``binance_replay`` pytest fixture
(``tests/fixtures/binance.py``).
"""

from .app import WEIGHTS, ReplayApp
from .catalog import Catalog, default_data_dirs, shared_data_dir
from .faults import Fault, Faults, FaultState
from .server import ReplayServer

__all__ = [
    "WEIGHTS",
    "Catalog",
    "Fault",
    "FaultState",
    "Faults",
    "ReplayApp",
    "ReplayServer",
    "default_data_dirs",
    "shared_data_dir",
]
