"""The AQL the product issues, in one place.

Sinks write through the document API; only verification and coverage read with AQL. Keeping every query
here lets the ArangoDB-compatible test server implement exactly these shapes, and lets the
contract tests run them against a real ArangoDB as well.
"""

# Count and key range of the documents whose time attribute falls in [start, end).
# An aggregate-only COLLECT yields exactly one row, also for an empty window
# (count 0, first/last null), so callers never see an empty result.
WINDOW_SUMMARY = """
FOR d IN @@collection
  FILTER d.@time_field >= @start AND d.@time_field < @end
  COLLECT AGGREGATE n = COUNT(1), lo = MIN(d.@id_field), hi = MAX(d.@id_field)
  RETURN {count: n, first: lo, last: hi}
""".strip()


def window_summary_bind_vars(
    collection: str, time_field: str, id_field: str, start_ms: int, end_ms: int
) -> dict[str, object]:
    return {
        "@collection": collection,
        "time_field": time_field,
        "id_field": id_field,
        "start": start_ms,
        "end": end_ms,
    }


# The gap ledger's exchange gaps of one symbol x data type (coverage reads them).
GAPS_OF = """
FOR g IN @@collection
  FILTER g.symbol == @symbol AND g.data_type == @data_type
  RETURN g
""".strip()
