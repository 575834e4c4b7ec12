"""Ledger checkpoints: the records of the compacted ledger topic, and which results offset each one records.

**Checkpoints.** After each successful commit of position C for a source partition, the connector writes
`{committed: C, results_partition: rp, results_offset: R}` to the compacted ledger topic, keyed by
group/topic/partition, where R is a results offset at or below the first result of any offset >= C.
Commit first, checkpoint second: a crash in between leaves an older checkpoint, whose R is lower, so the
scan is longer but still complete.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from connector.partition_keys import TopicPartitionKey

__all__ = ["Checkpoint", "Watermarks", "checkpoint_key", "checkpoint_record", "parse_checkpoint"]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A ledger record: `committed` was committed; results of offsets >= it start at or after
    `results_offset` of `results_partition`."""

    committed: int
    results_partition: int
    results_offset: int


def parse_checkpoint(value: bytes | None) -> Checkpoint | None:
    """A ledger value as a `Checkpoint`, or None if it is not one (undecodable, wrong types, negative)."""
    try:
        data = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    fields = (data.get("committed"), data.get("results_partition"), data.get("results_offset"))
    if not all(type(v) is int and v >= 0 for v in fields):
        return None
    return Checkpoint(*fields)  # type: ignore[arg-type]


def checkpoint_key(group: str, tp: TopicPartitionKey) -> bytes:
    """The ledger key of `group`'s checkpoints of source partition `tp`."""
    return f"{group}\x00{tp[0]}\x00{tp[1]}".encode()


def checkpoint_record(group: str, tp: TopicPartitionKey, committed: int, rp: int, start: int) -> tuple[bytes, bytes]:
    """The ledger record (key, value): `committed` was committed; the scan of `tp` may start at `start` of
    results partition `rp`."""
    value = {"committed": committed, "results_partition": rp, "results_offset": start}
    return checkpoint_key(group, tp), orjson.dumps(value)


class Watermarks:
    """Per source partition: acknowledged results not yet under the commit watermark, in source order, and
    the results offset to checkpoint. Owned by the pipeline thread."""

    __slots__ = ("_acked", "_floor")

    def __init__(self) -> None:
        self._acked: dict[TopicPartitionKey, list[tuple[int, int]]] = {}  # (source offset, results offset)
        self._floor: dict[TopicPartitionKey, int] = {}  # results offset after the last result below the watermark

    def acked(self, tp: TopicPartitionKey, written: Iterable[tuple[int, int]]) -> None:
        """Results of `tp` acknowledged: (source offset, results offset) each."""
        self._acked.setdefault(tp, []).extend(written)

    def checkpoint_offset(self, tp: TopicPartitionKey, committed: int) -> int | None:
        """A results offset at or below the first result of any source offset >= `committed` (None: unknown,
        keep the previous checkpoint)."""
        entries = self._acked.get(tp, [])
        below = [r for s, r in entries if s < committed]
        if below:
            self._floor[tp] = max(below) + 1
        remaining = [(s, r) for s, r in entries if s >= committed]
        self._acked[tp] = remaining
        if remaining:
            return min(r for _, r in remaining)
        return self._floor.get(tp)

    def forget(self, tps: Iterable[TopicPartitionKey]) -> None:
        for tp in tps:
            self._acked.pop(tp, None)
            self._floor.pop(tp, None)
