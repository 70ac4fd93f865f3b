"""Per-partition bookkeeping of the sink: what is written, what is committed, where each partition ends.

How `records_written` stays exact across restarts (kill -9, then a new process): the count is
never a per-process counter. Every offset commit carries, in the commit's metadata, the number of
data records of that partition written up to the committed offset, and — once the partition's
end-of-stream marker is consumed — the marker's `records`. A restarted sink reads its committed
offsets with their metadata and continues each count where the last commit left it. Records
after the last commit are read again, written again (replace on `_key` → the same documents) and
counted once, because a count only advances together with the commit that covers it.

Three layers per partition: committed; handed over (one batch being written while the next is
read); open (the batch being filled). A commit's metadata counts all three up to its offset.

A commit without our metadata (e.g. offsets moved with kafka-consumer-groups) is not trusted:
that partition is re-read from its beginning, which costs time but keeps the count exact.
The final total is cross-checked against the EndOfStream markers (`EndOfStream.records` is the
loader's total, the same on every partition).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

_META_VERSION = 1


class LedgerError(Exception):
    """The topic's contents contradict the end-of-stream contract (message is for humans)."""


@dataclass
class PartitionState:
    partition: int
    # Next offset to read after the last commit; OFFSET_BEGINNING when nothing trusted is committed.
    committed_offset: int = OFFSET_BEGINNING
    committed_written: int = 0
    # EndOfStream.records of this partition's marker, once the marker is committed.
    committed_eos: int | None = None
    # Handed over to be written, not yet committed (at most one batch at a time).
    sent_offset: int | None = None
    sent_records: int = 0
    sent_eos: int | None = None
    # Consumed, in the open batch.
    next_offset: int | None = None
    pending_records: int = 0
    pending_eos: int | None = None

    @property
    def finished(self) -> bool:
        """The marker is committed: nothing more will come from this partition."""
        return self.committed_eos is not None

    @property
    def eos_seen(self) -> bool:
        return self.committed_eos is not None or self.sent_eos is not None or self.pending_eos is not None

    @property
    def dirty(self) -> bool:
        """The open batch moved this partition past what is handed over or committed."""
        base = self.sent_offset if self.sent_offset is not None else self.committed_offset
        return self.next_offset is not None and self.next_offset != base

    def metadata(self) -> str:
        meta: dict[str, int] = {
            "v": _META_VERSION,
            "written": self.committed_written + self.sent_records + self.pending_records,
        }
        eos = next((e for e in (self.pending_eos, self.sent_eos, self.committed_eos) if e is not None), None)
        if eos is not None:
            meta["eos"] = eos
        return json.dumps(meta, separators=(",", ":"))

    def hand_over(self) -> None:
        if self.next_offset is not None:
            self.sent_offset = self.next_offset
        self.sent_records += self.pending_records
        if self.pending_eos is not None:
            self.sent_eos = self.pending_eos
        self.pending_records, self.pending_eos = 0, None

    def sent_committed(self) -> None:
        if self.sent_offset is not None:
            self.committed_offset = self.sent_offset
        self.committed_written += self.sent_records
        if self.sent_eos is not None:
            self.committed_eos = self.sent_eos
        self.sent_offset, self.sent_records, self.sent_eos = None, 0, None


def parse_metadata(text: str | None) -> tuple[int, int | None] | None:
    """(written, eos records or None) from our commit metadata; None if it is not ours."""
    if not text:
        return None
    try:
        meta = json.loads(text)
    except ValueError:
        return None
    if not isinstance(meta, dict) or meta.get("v") != _META_VERSION:
        return None
    written, eos = meta.get("written"), meta.get("eos")
    if not isinstance(written, int) or written < 0 or not (eos is None or isinstance(eos, int)):
        return None
    return written, eos


class Ledger:
    """The sink's view of every partition of one topic."""

    def __init__(self, topic: str, states: Iterable[PartitionState]) -> None:
        self.topic = topic
        self.states = {s.partition: s for s in states}

    @classmethod
    def from_committed(cls, topic: str, committed: Iterable[TopicPartition], log: logging.Logger) -> Ledger:
        """Resume from the group's committed offsets and their metadata (see module docstring)."""
        states = []
        for tp in committed:
            state = PartitionState(tp.partition)
            if tp.offset >= 0:
                parsed = parse_metadata(tp.metadata)
                if parsed is None:
                    log.warning(
                        "committed offset without sink metadata: re-reading the partition from its start",
                        extra={"partition": tp.partition, "offset": tp.offset},
                    )
                else:
                    state.committed_offset = tp.offset
                    state.committed_written, state.committed_eos = parsed
            states.append(state)
        return cls(topic, states)

    # --- consuming ------------------------------------------------------------------------

    def accepts(self, partition: int, offset: int) -> bool:
        """False for a message at or before what is already consumed, or after the marker."""
        state = self.states[partition]
        if state.eos_seen:
            return False
        position = state.next_offset if state.next_offset is not None else state.committed_offset
        return position < 0 or offset >= position

    def add_record(self, partition: int, offset: int) -> None:
        self.add_records(partition, 1, offset + 1)

    def add_records(self, partition: int, count: int, next_offset: int) -> None:
        """`count` records of `partition` taken into the open batch, the last at `next_offset - 1`."""
        state = self.states[partition]
        state.pending_records += count
        state.next_offset = next_offset

    def add_eos(self, partition: int, offset: int, records: int) -> None:
        state = self.states[partition]
        state.pending_eos = records
        state.next_offset = offset + 1

    # --- committing -----------------------------------------------------------------------

    def pending_commits(self) -> list[TopicPartition]:
        """The commits that cover everything consumed so far (handed over and open)."""
        return [
            TopicPartition(self.topic, s.partition, s.next_offset, metadata=s.metadata())
            for s in self.states.values()
            if s.dirty and s.next_offset is not None
        ]

    def hand_over(self) -> tuple[int, list[TopicPartition]]:
        """The open batch goes to the writer: (its records, the commits to make once it is stored).

        Only one batch is handed over at a time: the previous one must be committed first.
        """
        if any(s.sent_offset is not None for s in self.states.values()):
            raise RuntimeError("the batch handed over before is not committed yet")
        records, commits = self.pending, self.pending_commits()
        for state in self.states.values():
            state.hand_over()
        return records, commits

    def handed_over_committed(self) -> None:
        """The batch handed over is stored and its commits are made."""
        for state in self.states.values():
            state.sent_committed()

    def mark_committed(self) -> None:
        """Everything consumed so far (handed over and open) is stored and committed."""
        for state in self.states.values():
            state.hand_over()
            state.sent_committed()

    # --- totals ---------------------------------------------------------------------------

    @property
    def written(self) -> int:
        """Records written AND committed, summed over partitions — survives restarts."""
        return sum(s.committed_written for s in self.states.values())

    @property
    def pending(self) -> int:
        """Records in the open batch."""
        return sum(s.pending_records for s in self.states.values())

    @property
    def in_flight(self) -> int:
        """Records handed over, not yet committed."""
        return sum(s.sent_records for s in self.states.values())

    @property
    def eos_pending(self) -> bool:
        return any(s.pending_eos is not None for s in self.states.values())

    @property
    def all_finished(self) -> bool:
        return all(s.finished for s in self.states.values())

    @property
    def all_eos_seen(self) -> bool:
        """Every partition's marker is consumed: nothing is left to read."""
        return all(s.eos_seen for s in self.states.values())

    def unfinished(self) -> list[int]:
        return [p for p, s in self.states.items() if not s.finished]

    def start_positions(self) -> list[TopicPartition]:
        """Where to start reading each partition that is not finished yet."""
        return [
            TopicPartition(self.topic, s.partition, s.committed_offset) for s in self.states.values() if not s.finished
        ]

    def final_total(self) -> int:
        """The cross-checked total once every partition is finished; LedgerError on a mismatch."""
        announced = {s.committed_eos for s in self.states.values()}
        if len(announced) != 1 or None in announced:
            detail = ", ".join(f"partition {p}: {s.committed_eos}" for p, s in sorted(self.states.items()))
            raise LedgerError(f"end-of-stream markers of topic {self.topic} disagree on the total ({detail})")
        expected = announced.pop()
        assert expected is not None
        if self.written != expected:
            per_partition = ", ".join(f"{p}: {s.committed_written}" for p, s in sorted(self.states.items()))
            raise LedgerError(
                f"wrote {self.written} records from topic {self.topic} (per partition {per_partition}) "
                f"but the loader's end-of-stream marker announces {expected}"
            )
        return self.written
