"""Per-partition commit watermark (pure).

Every consumed offset is `track`ed in consumption order; it is `settle`d later, in any order, once it is
done for good (accepted by RD with its result acknowledged, dead-lettered and acknowledged, or skipped as
a tombstone). The committable position of a partition is one past the highest offset whose every
tracked predecessor is settled: the Kafka convention "next offset to read". Offsets may have gaps
(compaction, transaction markers); only tracked offsets count.

`settle` for a partition that is not tracked (revoked or lost) is ignored, so late answers from before a
rebalance never move a watermark this member no longer owns. If the partition came back meanwhile, a
late settlement is still true (RD did accept that record), so counting it loses nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["OffsetTracker", "TopicPartitionKey"]

from connector.partition_keys import TopicPartitionKey


class _Partition:
    __slots__ = ("committed", "next_commit", "pending", "settled")

    def __init__(self) -> None:
        self.pending: deque[int] = deque()  # tracked, not yet below the watermark, in order
        self.settled: set[int] = set()  # settled but waiting for an earlier offset
        self.next_commit: int | None = None  # watermark: next offset to read after a restart
        self.committed: int | None = None  # last watermark handed out by `committable`


class OffsetTracker:
    """Tracks in-flight offsets per partition and yields contiguous commit positions. One owner thread."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: dict[TopicPartitionKey, _Partition] = {}

    def track(self, tp: TopicPartitionKey, offset: int) -> None:
        """Record a consumed offset (offsets of one partition must increase)."""
        part = self._parts.get(tp)
        if part is None:
            part = self._parts[tp] = _Partition()
        if part.pending and offset <= part.pending[-1]:
            raise ValueError(f"offset {offset} of {tp} tracked after {part.pending[-1]}")
        part.pending.append(offset)

    def settle(self, tp: TopicPartitionKey, offsets: Iterable[int]) -> None:
        """Mark offsets done (each must have been tracked). Ignored if `tp` is not tracked."""
        part = self._parts.get(tp)
        if part is None:
            return
        part.settled.update(offsets)
        pending, settled = part.pending, part.settled
        while pending and pending[0] in settled:
            offset = pending.popleft()
            settled.discard(offset)
            part.next_commit = offset + 1

    def committable(self) -> dict[TopicPartitionKey, int]:
        """Watermarks that moved since the last call; the caller commits them."""
        moved: dict[TopicPartitionKey, int] = {}
        for tp, part in self._parts.items():
            if part.next_commit is not None and part.next_commit != part.committed:
                moved[tp] = part.next_commit
        return moved

    def mark_committed(self, positions: dict[TopicPartitionKey, int]) -> None:
        """Record that these positions were committed (a failed commit is simply not marked)."""
        for tp, position in positions.items():
            part = self._parts.get(tp)
            if part is not None:
                part.committed = position

    def forget(self, tps: Iterable[TopicPartitionKey]) -> None:
        """Stop tracking partitions (revoked or lost); their later settlements are ignored."""
        for tp in tps:
            self._parts.pop(tp, None)

    def unsettled(self, tp: TopicPartitionKey | None = None) -> int:
        """Tracked offsets not yet under the watermark (for one partition, or all)."""
        parts = self._parts.values() if tp is None else [p for k, p in self._parts.items() if k == tp]
        return sum(len(p.pending) for p in parts)

    def first_unsettled(self, tp: TopicPartitionKey) -> int | None:
        """The lowest tracked offset of `tp` not yet under the watermark (where to re-read from)."""
        part = self._parts.get(tp)
        return part.pending[0] if part is not None and part.pending else None

    def partitions(self) -> list[TopicPartitionKey]:
        return list(self._parts)
