"""The loader: Binance REST / data.binance.vision archive → the run's Kafka data topic.

Modules, one job each:
  hooks.py        interruptible waits and calls, visible wait events (the seam to the runtime)
  metrics.py      streamforge_loader_* Prometheus metrics
  retry.py        bounded exponential retries of transient HTTP failures (tenacity)
  binance_rest.py /api/v3/klines and /api/v3/aggTrades with weight budget, 429/418 handling
  archive.py      daily zips: download + sha256 check against .CHECKSUM, streamed CSV lines
  sources.py      window → archive/REST segments, record iteration, gap checks
  produce.py      idempotent Kafka producer and the end-of-stream marker
  __main__.py     wiring through runtime.worker.run
"""
