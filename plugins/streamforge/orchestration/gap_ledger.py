"""The gap ledger: one ArangoDB document per exchange gap, in the data's database.

Collection `contracts.gaps.GAP_COLLECTION`, key `gap_key(gap)`: re-running a day replaces the
same documents, so the ledger never holds a gap twice. Repairs are not gaps (the data is
complete) and are not written here.
"""

from __future__ import annotations

import time
from typing import Any

from streamforge.contracts.gaps import GAP_COLLECTION, Gap


def record_gaps(db: Any, gaps: list[Gap], *, dag_id: str, run_id: str, queue_id: str) -> list[str]:
    """Upsert the gaps (python-arango StandardDatabase); returns their keys."""
    if not gaps:
        return []
    if not db.has_collection(GAP_COLLECTION):
        try:
            db.create_collection(GAP_COLLECTION)
        except Exception:  # a concurrent run created it first
            if not db.has_collection(GAP_COLLECTION):
                raise
    now = time.time()
    docs = [
        g.model_copy(
            update={"dag_id": dag_id, "run_id": run_id, "queue_id": queue_id, "recorded_at": now}
        ).to_document()
        for g in gaps
    ]
    db.collection(GAP_COLLECTION).insert_many(docs, overwrite_mode="replace", raise_on_document_error=True)
    return [d["_key"] for d in docs]
