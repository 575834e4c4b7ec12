"""The results the ledger reads back: where they go and whose they are.

- **Local results.** All results of one source partition go to one results partition
  (`results_partition(topic, partition)`, a stable hash), in source-offset order (one lane per source
  partition, an idempotent producer). A scan for one source partition reads one results partition.
- **Who wrote it.** Each result carries `writer_group` (our consumer group), `writer_destination` (a
  fingerprint of the RD base URL and account credential, `rd_destination`), `writer_base` (the committed
  position of its source partition the writer knew: -1 before any commit) and `rd_account` (the account's
  name; informative only, names change). Only a result of our group and one of our destinations (one per
  configured RD account) can settle a record (`our_result`); other groups' results, other destinations'
  and results of older connectors (no writer fields) are read past. Results written before `rd_account`
  existed (an earlier DeliveryResult version, null there) settle records like any other. Results topics
  are shared between deployments by default.

Whoever can write to the results or ledger topic is trusted: a forged result of our group and destination
makes a record be skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from collections.abc import Set as AbstractSet
from typing import Any

from connector.avro.encoder import DELIVERY_RESULT
from connector.partition_keys import TopicPartitionKey, stable_slot

__all__ = ["destination_set", "our_result", "rd_destination", "results_partition"]


def results_partition(topic: str, partition: int, results_partitions: int) -> int:
    """The results partition that holds every result of source partition (topic, partition)."""
    return stable_slot(topic, partition, results_partitions)


def rd_destination(base_url: str, credential: str, client_id: str | None = None) -> str:
    """The `writer_destination` of results delivered to this RD account: 16 hex digits of a SHA-256 of the
    base URL (without a trailing slash), the app's client id (refresh flow) and the configured credential
    (the refresh token in the refresh flow, else the access token). The credential itself never leaves.

    RD shows no account id to the API, so the account is known by the credential that reaches it. A new
    credential for the same account (a re-authorisation, a new static token) is another destination: the
    records delivered but not committed at that restart are sent again (a possible duplicate, the safe
    side), where the client id alone would call two accounts authorised by one app the same destination
    (a record delivered to one would be skipped for the other)."""
    identity = "\x00".join(("rd-connector destination v1", base_url.rstrip("/"), client_id or "", credential))
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def destination_set(destinations: Collection[str]) -> frozenset[str]:
    """`destinations` as a set; a lone string is refused (`TypeError`): taken as a collection, its characters
    would be the destinations."""
    if isinstance(destinations, str):
        raise TypeError(
            f"destinations must be a collection of rd_destination() strings, not the string {destinations!r}"
        )
    return frozenset(destinations)


def our_result(
    full_name: str, record: Any, group: str, destinations: AbstractSet[str]
) -> tuple[TopicPartitionKey, int, int] | None:
    """((source topic, partition), source offset, writer base) of a decoded results value written by
    `group` for one of `destinations`; None for anything else: another group or destination, an older
    connector's result (no writer fields), another record type, a value of the wrong types. `rd_account` is
    not looked at (null in results of the DeliveryResult version before it)."""
    if full_name != DELIVERY_RESULT or not isinstance(record, dict):
        return None
    destination = record.get("writer_destination")
    if record.get("writer_group") != group or not isinstance(destination, str) or destination not in destinations:
        return None
    topic, partition = record.get("source_topic"), record.get("source_partition")
    offset, base = record.get("source_offset"), record.get("writer_base")
    # type() is int: a bool is an int too, and a hostile schema could carry one
    if not isinstance(topic, str) or not all(type(v) is int for v in (partition, offset, base)):
        return None
    if partition < 0 or offset < 0 or base < -1:  # type: ignore[operator]
        return None
    return (topic, partition), offset, base  # type: ignore[return-value]
