"""Which collection each document of a batch goes to (ARCHITECTURE §4).

With COLLECTION_NAME set, all of them go there. Without it (daily layout, a window longer than
a day: names.routes_per_day) each document goes to the collection of its own UTC day, named by
contracts/names.py exactly as the daily run of that day names it, so a monthly run and the
daily runs of the same days store the same documents under the same `_key`s in the same
collections. A record whose day lies outside TIME_RANGE is refused: it would open a collection
no run of this window owns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from streamforge.contracts.config import SinkSettings
from streamforge.contracts.names import collection_name
from streamforge.contracts.record_codec import Document

DAY_MS = 86_400_000


class OutsideWindow(ValueError):
    """A record's day is not a day of the sink's TIME_RANGE."""


class CollectionRouter:
    """Splits a batch by target collection, keeping each part in batch order.

    :param settings: the sink's settings (COLLECTION_NAME, or the layout, symbol, type and TIME_RANGE).
    """

    def __init__(self, settings: SinkSettings) -> None:
        self.fixed = settings.collection_name
        self._symbol, self._type = settings.symbol, settings.type
        self._field = settings.data_type.time_field
        self._names: dict[int, str] = {}  # UTC day number -> collection
        if self.fixed is None:
            assert settings.time_range is not None  # SinkSettings requires it without a collection
            window = settings.time_range
            self._first_day = window.start_ms // DAY_MS
            self._last_day = (window.end_ms - 1) // DAY_MS
            self._window = window.iso()

    def split(self, docs: Sequence[Document]) -> dict[str, list[Document]]:
        if self.fixed is not None:
            return {self.fixed: list(docs)}
        days: dict[int, list[Document]] = {}
        field = self._field
        for doc in docs:
            day = getattr(doc, field) // DAY_MS
            part = days.get(day)
            if part is None:
                part = days[day] = []
            part.append(doc)
        return {self._name(day, part[0]): part for day, part in days.items()}

    def _name(self, day: int, sample: Document) -> str:
        name = self._names.get(day)
        if name is None:
            if not self._first_day <= day <= self._last_day:
                raise OutsideWindow(
                    f"record {sample.key} ({self._field} {getattr(sample, self._field)}) lies outside "
                    f"TIME_RANGE {self._window}: no collection of this window holds its day"
                )
            name = self._names[day] = collection_name(
                self._symbol, self._type, datetime.fromtimestamp(day * DAY_MS / 1000, UTC)
            )
        return name
