"""ArangoDB sinks (`arango-candles`, `arango-trades`): one data topic → one collection.

engine.py consumes, batches, commits and tracks end of stream; ledger.py keeps the exact,
restart-proof count; arango_writer.py owns collections and writes; __main__.py wires them.
"""
