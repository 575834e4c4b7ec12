"""What to do with a batch RD refuses because of some of its events: bisect it.

Two answers say the batch holds events RD will not take, not which ones:

- a 400/422 in RD's error format: events RD will never accept. A single event RD still rejects is
  dead-lettered with reason `rejected_by_rd` (`rejected_by_rd` builds the letter);
- a 429 from RD's per-contact limiter (`lead_limiter`): events of contacts over RD's limit (about 120 events
  per contact per 24 h). A single event RD still refuses is dead-lettered with reason `contact_rate_limited`
  and `rdc.retry.after`, when RD takes that contact again (`contact_rate_limited` builds the letter). The
  account is not paused for it: every other event flows.

Either way the batch is halved and each half sent again, in order, until those events are isolated; every
other event is delivered in a sub-batch RD accepts. RD's answer travels as the letter's detail. k refused
events in a batch of n cost at most 1 + 2k * ceil(log2 n) requests (at most k * (2 log2 n + 1)). A 413, or a
4xx not in RD's format, is never bisected: it says nothing about the records (`rd.retry`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from connector.in_flight import Item, item_weight
from connector.ops.metrics import Metrics
from connector.rd.bounded_http import Answer
from connector.settle.dead_letters import rd_answer_summary
from connector.settle.reporter import DeadLetter

__all__ = ["LetterOf", "bisect", "contact_rate_limited", "rejected_by_rd"]

#: The dead letter of a single event RD still refuses, from RD's answer.
LetterOf = Callable[[Item, Answer | None], DeadLetter]


def _letter(item: Item, answer: Answer | None, reason: str, retry_after: str | None = None) -> DeadLetter:
    return DeadLetter.of(
        item,
        stage="send",
        reason=reason,
        detail="" if answer is None else answer.excerpt(),
        log_detail=rd_answer_summary(answer.status_code, answer.body) if answer else "",
        rd_event=item.event,
        weight=item_weight(item),
        retry_after=retry_after,
    )


def rejected_by_rd(item: Item, answer: Answer | None) -> DeadLetter:
    """RD rejected `item` in its error format (400/422): it will never take it."""
    return _letter(item, answer, "rejected_by_rd")


def contact_rate_limited(retry_after: str) -> LetterOf:
    """The letter of an event whose contact is over RD's per-contact limit; `retry_after` is the RFC 3339
    UTC time RD takes that contact's events again (`rdc.retry.after`)."""

    def letter(item: Item, answer: Answer | None) -> DeadLetter:
        return _letter(item, answer, "contact_rate_limited", retry_after)

    return letter


def bisect(
    items: Sequence[Item],
    answer: Answer | None,
    deliver: Callable[[Sequence[Item]], None],
    dead_letter: Callable[[DeadLetter], None],
    metrics: Metrics,
    letter: LetterOf = rejected_by_rd,
) -> None:
    """RD refused `items` with `answer`: dead-letter a single event (`letter` builds it), else `deliver` each
    half, in order (each half is a batch of its own: `deliver` bisects it again if RD refuses it too)."""
    metrics.batch_done("split")
    if len(items) == 1:
        dead_letter(letter(items[0], answer))
        return
    middle = len(items) // 2
    deliver(items[:middle])
    deliver(items[middle:])
