"""What to do with a batch RD rejects in its error format (400/422): bisect it.

RD says the batch holds an event it will never accept, not which one. So the batch is halved and each half
sent again, in order, until the rejected events are isolated: a single event RD still rejects is
dead-lettered (reason `rejected_by_rd`, with RD's answer as the detail), and every other event is delivered
in a sub-batch RD accepts. k rejected events in a batch of n cost at most 1 + 2k * ceil(log2 n) requests. A
413, or a 4xx not in RD's format, is never bisected: it says nothing about the records (`rd.retry`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from connector.in_flight import Item, item_weight
from connector.ops.metrics import Metrics
from connector.rd.bounded_http import Answer
from connector.settle.dead_letters import rd_answer_summary
from connector.settle.reporter import DeadLetter

__all__ = ["bisect"]


def bisect(
    items: Sequence[Item],
    answer: Answer | None,
    deliver: Callable[[Sequence[Item]], None],
    dead_letter: Callable[[DeadLetter], None],
    metrics: Metrics,
) -> None:
    """RD rejected `items` with `answer`: dead-letter a single event, else `deliver` each half, in order
    (each half is a batch of its own: `deliver` bisects it again if RD rejects it too)."""
    metrics.batch_done("split")
    if len(items) == 1:
        item = items[0]
        dead_letter(
            DeadLetter.of(
                item,
                stage="send",
                reason="rejected_by_rd",
                detail="" if answer is None else answer.excerpt(),
                log_detail=rd_answer_summary(answer.status_code, answer.body) if answer else "",
                rd_event=item.event,
                weight=item_weight(item),
            )
        )
        return
    middle = len(items) // 2
    deliver(items[:middle])
    deliver(items[middle:])
