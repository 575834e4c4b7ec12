"""The ledger's pure parts: where results of a partition go, and which results offset a checkpoint records."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.ledger import Watermarks, results_partition

TP = ("orders", 0)


def test_results_partition_is_stable_and_in_range() -> None:
    assert results_partition("orders", 3, 6) == results_partition("orders", 3, 6)
    assert all(0 <= results_partition("t", p, 5) < 5 for p in range(100))
    assert len({results_partition("t", p, 5) for p in range(100)}) == 5  # spread over all partitions


def test_checkpoint_is_the_first_result_at_or_above_the_commit() -> None:
    marks = Watermarks()
    for source, result in [(0, 10), (1, 11), (2, 15), (3, 16)]:
        marks.acked(TP, source, result)
    assert marks.checkpoint_offset(TP, 2) == 15  # results of offsets >= 2 start at 15
    assert marks.checkpoint_offset(TP, 4) == 17  # all below the commit: after the last one
    assert marks.checkpoint_offset(TP, 9) == 17  # nothing new: stays
    marks.acked(TP, 9, 30)
    assert marks.checkpoint_offset(TP, 9) == 30


def test_unknown_until_a_result_is_acknowledged() -> None:
    marks = Watermarks()
    assert marks.checkpoint_offset(TP, 5) is None  # keep whatever checkpoint there was
    marks.acked(TP, 5, 3)
    marks.forget([TP])
    assert marks.checkpoint_offset(TP, 6) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=60),
    st.lists(st.integers(min_value=0, max_value=80), min_size=1, max_size=10),
)
def test_checkpoint_never_skips_a_result_above_the_commit(gaps: list[int], commits: list[int]) -> None:
    """Results of one partition arrive in source order at increasing results offsets; for any sequence of
    commits, the checkpoint is <= every result offset of a source offset >= the commit."""
    marks = Watermarks()
    results: list[tuple[int, int]] = []
    source = result = 0
    for gap in gaps:
        source += gap
        result += 1 + gap % 2  # other partitions' results interleave
        results.append((source, result))
    fed = 0
    for committed in sorted(commits):
        while fed < len(results) and results[fed][0] < committed + 3:  # some results ahead of the commit
            marks.acked(TP, *results[fed])
            fed += 1
        start = marks.checkpoint_offset(TP, committed)
        later = [r for s, r in results if s >= committed]
        if start is not None and later:
            assert start <= min(later)
