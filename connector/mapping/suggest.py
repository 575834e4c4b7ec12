"""'Did you mean ...?': the closest of some names to a misspelt one, for check messages. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["suggest"]


def suggest(word: str, choices: Iterable[str]) -> str:
    """`"; did you mean 'x'?"` for the closest of `choices` (fewest typing edits, a swap of two neighbours
    counting as one; else a similar one, else one it begins), or `""`. Two equally close are both named, the
    more similar first (`ECOMMERCE_ORDER_PAYED` is two edits from both `..._PLACED` and `..._PAID`)."""
    options = [str(c) for c in choices]
    ranked = sorted(
        (_edits(word.lower(), c.lower()), -difflib.SequenceMatcher(None, word, c).ratio(), c) for c in options
    )
    if ranked and ranked[0][0] <= max(2, len(word) // 3) and ranked[0][0] < len(word):
        if len(ranked) > 1 and ranked[1][0] == ranked[0][0]:
            return f"; did you mean '{ranked[0][2]}' or '{ranked[1][2]}'?"
        return f"; did you mean '{ranked[0][2]}'?"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.75)
    if not close and len(word) >= 3:  # a name cut short: 'acme' for 'acme-orders'
        close = [c for c in options if c.startswith(word)][:1]
    return f"; did you mean '{close[0]}'?" if close else ""


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps."""
    previous, current = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        before, previous, current = previous, current, [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if before is not None and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
    return current[len(b)]
