"""The token store: each RD account's newest refresh token and access token, encrypted, in a compacted Kafka
topic (`RDC_TOKEN_STORE_TOPIC`) that every replica of the connector reads and writes.

Why: RD rotates the refresh token at each refresh and revokes the one used. Replicas sharing one RD app
must therefore share the newest refresh token, or the first refresh locks the others out
(INVALID_REFRESH_TOKEN).

On the topic (1 partition, `cleanup.policy=compact`): one record per refresh.
- Key: `"<account>:<fingerprint>"` (utf-8), the fingerprint being 12 hex digits of sha256(client id), so
  two RD apps whose accounts share a name do not collide. Not secret.
- Value: `version(1) || nonce(12) || AES-256-GCM(JSON of StoredTokens) + tag`, the key derived by HKDF-SHA256
  from `RDC_TOKEN_STORE_KEY` (else the account's client secret), info = account name, and the record key as
  AAD, so a value moved under another key does not open (`token_seal.py`). No token is ever on the topic
  in plain text. A value that does not open is ignored with a warning naming the record key (its most
  likely cause: RDC_TOKEN_STORE_KEY differs between replicas); it never stops the connector.
- Newest wins by log order: the record latest in the log for a key is the store's value for that key
  (`written_at` is informative only: clocks of replicas differ).

How `RefreshingToken` (auth.py) uses it:
- A replica that refreshes publishes the answer BEFORE using the new access token: RD has just revoked the
  refresh token the others hold, and the store is where they find its successor.
- Stampedes: before refreshing, a replica reads the store and adopts a newer access token instead of
  refreshing; refresh times carry a per-refresh random jitter (up to 10% of the token lifetime, at most
  60 s), so one replica refreshes and the others adopt its answer at their own refresh time.
- A replica refused with INVALID_REFRESH_TOKEN (another replica won the race) polls the store for ~2.5 s
  for the winner's record before giving up.
- When the store cannot be written: `publish` raises `ConnectorError`; the caller retries a few times and
  then KEEPS the new tokens in memory and logs an error (raising would not help: RD has already revoked the
  old refresh token, so the new one must not be lost). Until it is published, the other replicas are
  refused at their next refresh; the caller retries the publish now and then.

`KafkaTokenStore` reads partition 0 with its own consumer (`assign()`, no group join, no commits), keeps its
position and the newest raw value per key, so each `read` fetches only what is new since the last one, yet
always reaches the current end of the log (it sees what another replica published a moment ago).
Thread-safe: one lock around every read and publish.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from connector.config import Secret
from connector.errors import ConnectorError
from connector.ops.kafka_clients import drain_log, new_admin, new_consumer, new_producer
from connector.rd.token_seal import Sealer, SealError, record_key

__all__ = [
    "WRITER_ID",
    "AccountTokenStore",
    "KafkaTokenStore",
    "StoredTokens",
    "TokenStoreLike",
    "open_tokens",
    "seal_tokens",
]

_log = logging.getLogger("connector.rd.token_store")

#: This process's id in the records it writes (logs only; not secret).
WRITER_ID: Final = secrets.token_hex(6)
_PARTITION: Final = 0
_UNUSED_GROUP: Final = "rd-connector-token-store"  # librdkafka wants a group.id; assign() never joins it


@dataclass(frozen=True, slots=True)
class StoredTokens:
    """One record of the store. Times are wall-clock epoch seconds; `expires_at` is 0 without an access token."""

    refresh_token: str
    access_token: str | None
    expires_at: float
    written_at: float
    writer: str

    def __repr__(self) -> str:
        return (
            f"StoredTokens(refresh_token='***', access_token={'***' if self.access_token else None!r}, "
            f"expires_at={self.expires_at}, written_at={self.written_at}, writer={self.writer!r})"
        )


def seal_tokens(sealer: Sealer, key: bytes, tokens: StoredTokens) -> bytes:
    """The record value of `tokens` under `key`."""
    plain = {
        "refresh_token": tokens.refresh_token,
        "access_token": tokens.access_token,
        "expires_at": tokens.expires_at,
        "written_at": tokens.written_at,
        "writer": tokens.writer,
    }
    return sealer.seal(key, json.dumps(plain, separators=(",", ":")).encode("utf-8"))


def open_tokens(sealer: Sealer, key: bytes, value: bytes) -> StoredTokens:
    """The tokens in a record value; `SealError` if it does not open or is not a record of this store."""
    try:
        plain = json.loads(sealer.open(key, value))
        tokens = StoredTokens(
            refresh_token=plain["refresh_token"],
            access_token=plain["access_token"],
            expires_at=float(plain["expires_at"]),
            written_at=float(plain["written_at"]),
            writer=str(plain["writer"]),
        )
    except SealError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise SealError("opens, but is not a token record") from exc
    if not isinstance(tokens.refresh_token, str) or not tokens.refresh_token:
        raise SealError("opens, but has no refresh token")
    if tokens.access_token is not None and not isinstance(tokens.access_token, str):
        raise SealError("opens, but its access token is not a string")
    return tokens


class TokenStoreLike(Protocol):
    """One account's view of a token store (what `RefreshingToken` needs)."""

    def load(self) -> StoredTokens | None:
        """The newest tokens stored for the account, None if none (or none that open). Raises
        `ConnectorError` when the store cannot be read."""
        ...

    def save(self, tokens: StoredTokens) -> None:
        """Store `tokens` as the account's newest. Raises `ConnectorError` when it could not be written."""
        ...


class KafkaTokenStore:
    """The token store on a compacted single-partition topic. Thread-safe. Call `ensure_topic()` before the
    first `read` or `publish` (a broker that auto-creates topics would make one of its default shape), and
    `close()` when done."""

    def __init__(self, kafka_config: Mapping[str, str], topic: str) -> None:
        """`kafka_config`: librdkafka settings shared by every client (`Settings.kafka_common()`); the store adds
        its consumer's and producer's own."""
        self._config: dict[str, Any] = dict(kafka_config)
        self.topic = topic
        self._lock = threading.Lock()
        self._consumer: Any = None
        self._producer: Any = None
        self._next_offset = 0  # the offset of the first record not read yet
        self._newest: dict[bytes, tuple[int, bytes]] = {}  # key -> (offset, raw value) of its newest record
        self._warned: set[tuple[bytes, int]] = set()  # undecryptable records already logged

    def ensure_topic(self, timeout_s: float = 10.0) -> None:
        """Create the topic (compacted, 1 partition, the broker's default replication) unless it exists."""
        admin = new_admin(self._config)
        topic = NewTopic(self.topic, num_partitions=1, replication_factor=-1, config={"cleanup.policy": "compact"})
        try:
            admin.create_topics([topic], request_timeout=timeout_s)[self.topic].result(timeout_s)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return
            raise ConnectorError(f"token store: cannot create RDC_TOKEN_STORE_TOPIC={self.topic}: {exc}") from exc
        except Exception as exc:  # a timeout of the future (concurrent.futures.TimeoutError), ...
            raise ConnectorError(
                f"token store: cannot create RDC_TOKEN_STORE_TOPIC={self.topic}: {type(exc).__name__}"
            ) from exc
        finally:
            drain_log(admin)

    def read(self, key: bytes, sealer: Sealer, timeout_s: float = 10.0) -> StoredTokens | None:
        """The newest record for `key` up to the current end of the log, opened with `sealer`; None when
        there is none or it does not open (logged once per record). Raises `ConnectorError` when the end of
        the log cannot be reached within `timeout_s`."""
        with self._lock:
            self._catch_up(timeout_s)
            newest = self._newest.get(key)
            if newest is None:
                return None
            offset, value = newest
            try:
                return open_tokens(sealer, key, value)
            except SealError as exc:
                if (key, offset) not in self._warned:
                    self._warned.add((key, offset))
                    _log.warning(
                        "token_store_record_ignored topic=%s key=%s offset=%d reason=%s: RDC_TOKEN_STORE_KEY may "
                        "differ between replicas",
                        self.topic, key.decode("utf-8", "replace"), offset, exc,
                    )  # fmt: skip
                return None

    def publish(self, key: bytes, sealed: bytes, timeout_s: float = 10.0) -> None:
        """Append `sealed` under `key` and wait for the broker's acknowledgement. Raises `ConnectorError`
        when it is not acknowledged within `timeout_s` (the record is then purged from the producer's queue,
        so that it cannot land later, after a newer one)."""
        failures: list[str] = []

        def delivered(error: KafkaError | None, message: object) -> None:
            if error is not None:
                failures.append(error.name())

        with self._lock:
            producer = self._ensure_producer()
            try:
                producer.produce(self.topic, value=sealed, key=key, partition=_PARTITION, on_delivery=delivered)
            except (KafkaException, BufferError) as exc:
                raise ConnectorError(f"token store: cannot write to RDC_TOKEN_STORE_TOPIC={self.topic}: {exc}") from exc
            left = producer.flush(timeout_s)
            if left:
                producer.purge()
                producer.flush(0)
                failures.append(f"not acknowledged within {timeout_s:g} s")
        if failures:
            raise ConnectorError(f"token store: writing to RDC_TOKEN_STORE_TOPIC={self.topic} failed: {failures[0]}")

    def read_to_end(self, timeout_s: float = 10.0) -> None:
        """Read the log to its current end (what `read` does first): proves the store can be read. Raises
        `ConnectorError` when it cannot be within `timeout_s` (`check` calls it before any refresh)."""
        with self._lock:
            self._catch_up(timeout_s)

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
            if self._producer is not None:
                self._producer.flush(5.0)
                self._producer = None

    def _ensure_producer(self) -> Any:
        if self._producer is None:
            self._producer = new_producer({"linger.ms": 0, "acks": "all", "message.timeout.ms": 30_000, **self._config})
        return self._producer

    def _catch_up(self, timeout_s: float) -> None:
        """Read from `_next_offset` to the current end of the log (called under the lock)."""
        deadline = time.monotonic() + timeout_s
        tp = TopicPartition(self.topic, _PARTITION)
        if self._consumer is None:
            self._consumer = new_consumer(
                {
                    **self._config,
                    "group.id": _UNUSED_GROUP,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "enable.partition.eof": True,
                    "fetch.wait.max.ms": 20,
                    "fetch.error.backoff.ms": 20,
                }
            )
            self._consumer.assign([TopicPartition(self.topic, _PARTITION, 0)])  # 0, not BEGINNING: no offset query
        try:
            _, high = self._consumer.get_watermark_offsets(tp, timeout=max(0.1, timeout_s), cached=False)
        except KafkaException as exc:
            raise ConnectorError(f"token store: cannot read RDC_TOKEN_STORE_TOPIC={self.topic}: {exc}") from exc
        drained = False
        while self._next_offset < high or not drained:
            remaining = deadline - time.monotonic()
            if self._next_offset < high and remaining <= 0:
                raise ConnectorError(
                    f"token store: RDC_TOKEN_STORE_TOPIC={self.topic} not read to its end (offset {high}) within "
                    f"{timeout_s:g} s (at {self._next_offset})"
                )
            # Below the end: wait for records. At the end: take what is already fetched, without waiting
            # (a broker may report the end of a multi-record batch short, see ../shared/tansu.md §4).
            # (`consume` waits its whole timeout unless 500 arrive: short steps.)
            wait = min(remaining, 0.02) if self._next_offset < high else 0.0
            messages = self._consumer.consume(500, timeout=max(0.0, wait))
            if self._next_offset >= high and not messages:
                drained = True
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        high = max(high, message.offset())
                        # At the end: offsets below it that never came (compacted away, transaction markers)
                        # are not waited for.
                        self._next_offset = max(self._next_offset, message.offset())
                        continue
                    raise ConnectorError(f"token store: cannot read RDC_TOKEN_STORE_TOPIC={self.topic}: {error}")
                self._take(message.offset(), message.key(), message.value())

    def _take(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        if offset < self._next_offset:
            return
        self._next_offset = offset + 1
        if key is None:
            return
        if value is None:  # a tombstone deletes the key
            self._newest.pop(key, None)
        else:
            self._newest[key] = (offset, value)


class AccountTokenStore:
    """One account's `TokenStoreLike` on a `KafkaTokenStore`: its record key and sealer bound."""

    def __init__(
        self,
        store: KafkaTokenStore,
        account: str,
        client_id: str,
        passphrase: Secret,
        *,
        timeout_s: float = 10.0,
    ) -> None:
        """`passphrase`: RDC_TOKEN_STORE_KEY when set, else the account's client secret."""
        self._store = store
        self.account = account
        self.key = record_key(account, client_id)
        self._sealer = Sealer(passphrase, account)
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"AccountTokenStore(topic={self._store.topic!r}, key={self.key.decode()!r})"

    def load(self) -> StoredTokens | None:
        return self._store.read(self.key, self._sealer, self._timeout_s)

    def save(self, tokens: StoredTokens) -> None:
        self._store.publish(self.key, seal_tokens(self._sealer, self.key, tokens), self._timeout_s)
