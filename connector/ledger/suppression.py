"""Which records a scan settles: the rule that tells a crash from a reset backwards (pure).

**Crash or reset.** Commits only move forward, so after a crash the committed position is at or above
every `writer_base` and every checkpoint of ours. A committed position below one of them means the
group's offsets were reset backwards: then nothing is skipped (the reset replays), and a checkpoint at
the reset position whose R is the end of the scan is written, so later scans (a crash during the replay)
start after the old results.
"""

from __future__ import annotations

__all__ = ["Suppression"]


class Suppression:
    """Which records of one source partition are delivered already, from what its scan found (pure).

    `committed`: the group's committed position at assignment (None: unknown; negative: none).
    `checkpointed`: the committed position of the partition's latest checkpoint (None: none). Feed every
    result of our group and destination in the scanned range to `add(source offset, writer base)`; then
    `offsets` are the records to skip and `reset` says the group was reset backwards. The rule:

    - committed unknown: nothing is skipped (it could be a reset; a possible duplicate, never a loss);
    - no committed position (a new group, or its offsets expired or were deleted): every result of ours
      settles its record, as nothing can be compared;
    - committed C >= 0: commits only move forward, so a checkpoint above C or a writer base above C means
      the offsets were reset backwards: nothing is skipped (the replay the operator asked for). Otherwise
      (base <= C for all, a crash or a hand-over) each result of an offset >= C settles it.
    """

    __slots__ = ("_committed", "offsets", "reset")

    def __init__(self, committed: int | None, checkpointed: int | None) -> None:
        self._committed = committed
        self.offsets: set[int] = set()
        self.reset = committed is not None and committed >= 0 and checkpointed is not None and checkpointed > committed

    def add(self, offset: int, base: int) -> None:
        committed = self._committed
        if committed is None or self.reset:
            return
        if committed >= 0 and base > committed:  # written after a commit above today's: a reset backwards
            self.reset = True
            self.offsets.clear()
        elif offset >= committed:
            self.offsets.add(offset)
