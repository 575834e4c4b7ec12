"""Which rebalance protocol the consumer group runs: EAGER (every member gives back everything at each
rebalance) or COOPERATIVE (only the partitions that move are revoked; the rest keep flowing).

librdkafka derives it from `partition.assignment.strategy`: `cooperative-sticky` is COOPERATIVE, `range` and
`roundrobin` are EAGER, and it refuses a list that mixes the two kinds. KIP-848 (`group.protocol=consumer`)
is always incremental. confluent-kafka 2.16 does not expose `rd_kafka_rebalance_protocol()` in Python, so
the configuration is what we read; a client that has `Consumer.rebalance_protocol()` is asked instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["COOPERATIVE", "EAGER", "rebalance_protocol"]

EAGER: Final = "EAGER"
COOPERATIVE: Final = "COOPERATIVE"

_COOPERATIVE_ASSIGNORS: Final = frozenset({"cooperative-sticky"})


def rebalance_protocol(config: Mapping[str, Any], consumer: Any = None) -> str:
    """EAGER or COOPERATIVE for a consumer built from `config` (`consumer`, if given, is asked first)."""
    ask = getattr(consumer, "rebalance_protocol", None)
    if callable(ask):
        answer = ask()
        if answer in (EAGER, COOPERATIVE):
            return str(answer)
    if str(config.get("group.protocol", "classic")).strip().lower() == "consumer":
        return COOPERATIVE
    strategy = str(config.get("partition.assignment.strategy", "range,roundrobin"))
    assignors = {name.strip().lower() for name in strategy.split(",") if name.strip()}
    return COOPERATIVE if assignors and assignors <= _COOPERATIVE_ASSIGNORS else EAGER
