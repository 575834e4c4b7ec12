"""Prometheus metrics of one pipeline, in a private registry (several pipelines or tests in one process
never clash). `registry` is what `probe_server.ProbeServer` serves at `/metrics` (prometheus_client's own
exposition: text or OpenMetrics, gzip); `render()` returns the text exposition (tests).

The registry also holds prometheus_client's process (`process_*`: CPU, RSS, fds), platform (`python_info`)
and GC (`python_gc_*`) collectors, and no `_created` series (see `Metrics.__init__`). Every known label value
is present at 0 from the start, so `increase()` sees the first occurrence: dead letters by every (stage,
reason) of `DEAD_LETTER_REASONS`, batches by every outcome, and per configured account (`accounts(names)`)
delivered, blocked, throttled by kind, token refreshes by result, requests by status class and retries by
every cause of `RETRY_CAUSES`.

| metric | type | labels | unit, meaning |
|---|---|---|---|
| `rdc_build_info` | gauge | `version`, `python`, `confluent_kafka`, `librdkafka` | 1; the versions running |
| `rdc_ready` | gauge | | 1 while `/readyz` answers 200 (read at each scrape; `watch_ready`) |
| `rdc_events_consumed_total` | counter | | records taken from Kafka, tombstones included |
| `rdc_events_delivered_total` | counter | `account` | events RD accepted (200 with their UUID) |
| `rdc_events_dead_lettered_total` | counter | `stage`, `reason` | records written to the dead-letter topic |
| `rdc_tombstones_skipped_total` | counter | | null-value records skipped |
| `rdc_events_skipped_total` | counter | `mapping` | records their mapping skips (`skip`): committed, not sent |
| `rdc_values_trimmed_total` | counter | | lists and strings cut to RD's caps (the events are sent, cut) |
| `rdc_batches_total` | counter | `outcome` | batches by final outcome: delivered, split, abandoned, failed |
| `rdc_requests_total` | counter | `status_class`, `account` | POSTs to RD: 2xx, 4xx, 5xx, error (no answer) |
| `rdc_request_body_bytes` | histogram | | bytes of each POST body |
| `rdc_request_fill_ratio` | histogram | | body bytes / RDC_BATCH_MAX_BYTES (1.0 = full) |
| `rdc_request_events` | histogram | | events per POST |
| `rdc_request_duration_seconds` | histogram | | seconds from send to answer (or error) |
| `rdc_retries_total` | counter | `cause`, `account` | retries: status_429, status_503, timeout, ... |
| `rdc_rd_throttled_total` | counter | `kind`, `account` | RD's 429s: `account`, `contact` (`lead_limiter`) |
| `rdc_rd_quota_reset_timestamp_seconds` | gauge | | when RD last said the account's quota resets (epoch s); 0: never |
| `rdc_token_refreshes_total` | counter | `result`, `account` | refreshes: ok, failed; adopted (from the token store) |
| `rdc_account_blocked` | gauge | `account` | 1 while RD refuses the account's credentials (its events wait) |
| `rdc_possible_duplicates_total` | counter | | events re-sent after a read timeout or a connection lost mid-answer |
| `rdc_in_flight_bytes` | gauge | | body bytes handed to lanes, not yet answered |
| `rdc_buffered_bytes` | gauge | | in-flight events' memory until settled (`item_weight`: JSON, value, key, overhead) |
| `rdc_delivery_latency_seconds` | histogram | | consume to RD's 200, oldest event of each batch |
| `rdc_oldest_unsettled_age_seconds` | gauge | | age of the oldest unsettled consumed offset |
| `rdc_consumer_lag` | gauge | `topic`, `partition` | messages: cached high watermark - committed |
| `rdc_assigned_partitions` | gauge | | partitions this member owns |
| `rdc_duplicates_suppressed_total` | counter | | records skipped because the ledger shows their result exists |
| `rdc_result_window_seconds` | histogram | | RD's 200 to Kafka's ack of the batch's results (a crash inside re-posts) |
| `rdc_rate_per_second` | gauge | `account` | requests/s the adaptive rate allows now (0: unlimited) |
| `rdc_rate_pause_seconds_total` | counter | | seconds every lane was held by 429 pauses (overlapping pauses once) |

Who calls what, and how often (each method's docstring repeats it):
- per consume batch: `events_consumed.inc(n)`, `tombstones_skipped.inc(n)`, `values_trimmed.inc(n)` (the
  `trims` of the batch's mapped events, summed: what `PipelineStats.trimmed` adds up); per loop iteration:
  `buffered_bytes.set(b)`; per commit interval: `oldest_unsettled_age.set(s)`, `update_lag(consumer, positions)`;
  on assign/revoke/lost: `assigned_partitions.set(n)`, `forget_partitions(tps)`.
- per dead-lettered record (rare): `dead_lettered(stage, reason)`; per skipped record: `skipped(mapping)` (a
  lock per record, ~0.3 us, next to the ~30 us of decoding it).
- per request (lane): `observe_request(status, seconds, body_bytes, events, max_bytes, account)`; per retry:
  `retry(cause, account)` and, when the failed attempt is `possibly_sent` (`rd.retry.classify_exception`: a read
  timeout, or a connection lost after the body went out; never an HTTP answer, a 5xx neither),
  `possible_duplicates.inc(len(batch))`; per refresh: `token_refreshed(ok, account)`; per 429:
  `rate_limited(kind, account)` and `pause_seconds.inc(s)` (the seconds the pause was extended by), and
  `rd_quota_reset_timestamp.set(epoch)` on a long account pause. `watch_rate(account, read)` once at start:
  the gauge reads the gate's rate at each scrape; `accounts(names)` and `watch_ready(read)` once at start.
- per batch (lane): `in_flight_bytes.inc(b)` when taken, `.dec(b)` when done; `batch_done(outcome)`;
  on acceptance `delivered(n, account)` and `observe_delivery_latency(now - oldest consume time)`.

Hot path: nothing here should be called per event. prometheus_client takes a lock per update (~0.3 us),
so per-batch calls cost nothing measurable at 20k events/s. Lag comes from `get_watermark_offsets(...,
cached=True)`: the high watermark the consumer learnt from its own fetches. A queried end offset is
wrong on Tansu (it answers the last batch's base offset + 1), and querying would cost a round trip.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import platform
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from connector.config.accounts import DEFAULT_ACCOUNT

__all__ = [
    "BATCH_OUTCOMES",
    "DEAD_LETTER_REASONS",
    "RETRY_CAUSES",
    "STATUS_CLASSES",
    "TOKEN_REFRESH_RESULTS",
    "Metrics",
    "WatermarkSource",
    "build_info",
    "status_class",
]

_BYTES_BUCKETS: Final = (1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 150_000, 180_000, 195_000, 200_000, 1e6)
_FILL_BUCKETS: Final = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
_EVENTS_BUCKETS: Final = (1, 5, 10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000)
_LATENCY_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DELIVERY_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
_OFFSET_INVALID: Final = -1001
_RATE_LIMIT_KINDS: Final = ("account", "contact")

#: Every (stage, reason) the connector dead-letters (README "Dead-letter reasons"; a test compares the two and
#: scans the source for reasons): each series exists at 0 from the start, so `increase()` sees the first one.
DEAD_LETTER_REASONS: Final = (
    *(
        ("decode", reason)
        for reason in (
            "bad_magic_byte",
            "truncated_body",
            "unknown_fingerprint",
            "unknown_schema_id",
            "unsupported_schema",
            "incompatible_schema",
            "corrupt_body",
            "unexpected_error",
        )
    ),
    *(
        ("map", reason)
        for reason in (
            "unknown_record",
            "schema_mismatch",
            "no_event_type",
            "unknown_account",
            "removed_event_type",
            "unknown_event_type",
            "invalid_payload_json",
            "missing_required_field",
            "invalid_email",
            "invalid_url",
            "invalid_currency",
            "negative_amount",
            "invalid_quantity",
            "value_too_long",
            "invalid_option",
            "invalid_legal_basis",
            "not_a_string",
            "invalid_decimal",
            "payload_too_deep",
            "unencodable_payload",
            "invalid_field",
            "event_too_large",
            "unexpected_error",
        )
    ),
    ("encode", "unexpected_error"),
    ("send", "rejected_by_rd"),
    ("send", "contact_rate_limited"),
)
BATCH_OUTCOMES: Final = ("delivered", "split", "abandoned", "failed")
STATUS_CLASSES: Final = ("2xx", "4xx", "5xx", "error")
#: The retry causes `rd.retry` decides (and `auth_unavailable`: the token endpoint did not answer). A 5xx
#: other than these (`status_520`) or another 4xx not in RD's format (`status_404_not_rd`) appears when it
#: first happens.
RETRY_CAUSES: Final = (
    "status_429",
    "status_503",
    "status_500",
    "status_502",
    "status_504",
    "status_408",
    "status_413_not_rd",
    "timeout",
    "connection_error",
    "auth_unavailable",
)
TOKEN_REFRESH_RESULTS: Final = ("ok", "failed", "adopted")


def build_info() -> dict[str, str]:
    """The labels of `rdc_build_info`: the connector's, Python's, confluent-kafka's and librdkafka's versions."""
    import confluent_kafka

    try:
        version = importlib.metadata.version("rd-connector")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = "unknown"
    return {
        "version": version,
        "python": platform.python_version(),
        "confluent_kafka": str(confluent_kafka.__version__),  # version() is a tuple in some releases, a str in 2.16
        "librdkafka": str(confluent_kafka.libversion()[0]),
    }


class WatermarkSource(Protocol):
    """What `update_lag` needs from a `confluent_kafka.Consumer`."""

    def get_watermark_offsets(self, partition: Any, timeout: float = ..., cached: bool = ...) -> Any: ...


def status_class(status: int | None) -> str:
    """`2xx`, `4xx`, `5xx` for an HTTP status; `error` for None (no answer)."""
    return "error" if status is None else f"{status // 100}xx"


class Metrics:
    """Every instrument of one connector process. Thread-safe (prometheus_client locks per update)."""

    def __init__(self) -> None:
        # No `_created` series (one per counter and histogram child: noise no query uses). prometheus_client
        # has no per-registry switch: its flag is process-wide and read at every scrape. Its environment variable
        # (PROMETHEUS_DISABLE_CREATED_SERIES) is read once, when prometheus_client is first imported, which is
        # before any code of ours runs; this call sets the same flag whenever it runs, so it always takes effect.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)  # process_*: CPU, RSS, open fds, start time (read from /proc at each scrape)
        PlatformCollector(registry=r)  # python_info
        GCCollector(registry=r)  # python_gc_*: collections per generation (gc.get_stats() at each scrape)
        Info("rdc_build", "Versions of the connector and of the libraries that move the data", registry=r).info(
            build_info()
        )
        self.events_consumed = Counter("rdc_events_consumed", "Records taken from Kafka", registry=r)
        self._delivered = Counter("rdc_events_delivered", "Events accepted by RD", ["account"], registry=r)
        self._dead_lettered = Counter(
            "rdc_events_dead_lettered", "Records sent to the dead-letter topic", ["stage", "reason"], registry=r
        )
        self.tombstones_skipped = Counter("rdc_tombstones_skipped", "Null-value records skipped", registry=r)
        self._skipped = Counter("rdc_events_skipped", "Records their mapping skips", ["mapping"], registry=r)
        self.values_trimmed = Counter("rdc_values_trimmed", "Lists and strings cut to RD's caps", registry=r)
        for stage, reason in DEAD_LETTER_REASONS:
            self._dead_lettered.labels(stage, reason)  # every known reason at 0 from the start
        self._batches = Counter("rdc_batches", "Closed batches by final outcome", ["outcome"], registry=r)
        for outcome in BATCH_OUTCOMES:
            self._batches.labels(outcome)
        self._requests = Counter("rdc_requests", "POSTs to RD by answer class", ["status_class", "account"], registry=r)
        self._body_bytes = Histogram(
            "rdc_request_body_bytes", "Body size of each POST to RD", buckets=_BYTES_BUCKETS, registry=r
        )
        self._fill = Histogram(
            "rdc_request_fill_ratio", "Body size over RDC_BATCH_MAX_BYTES", buckets=_FILL_BUCKETS, registry=r
        )
        self._events_per_request = Histogram(
            "rdc_request_events", "Events per POST to RD", buckets=_EVENTS_BUCKETS, registry=r
        )
        self._duration = Histogram(
            "rdc_request_duration_seconds", "RD request latency", buckets=_LATENCY_BUCKETS, registry=r
        )
        self._retries = Counter("rdc_retries", "Retries of a batch by cause", ["cause", "account"], registry=r)
        self.rd_throttled = Counter("rdc_rd_throttled", "RD 429 answers by kind", ["kind", "account"], registry=r)
        self.rd_quota_reset_timestamp = Gauge(
            "rdc_rd_quota_reset_timestamp_seconds",
            "Epoch seconds RD last said the account's quota resets (a long 429); 0: never",
            registry=r,
        )
        self._token_refreshes = Counter(
            "rdc_token_refreshes", "Access-token refreshes", ["result", "account"], registry=r
        )
        self._account_blocked = Gauge(
            "rdc_account_blocked",
            "1 while RD refuses the account's credentials (its events wait, uncommitted; the others flow)",
            ["account"],
            registry=r,
        )
        self.possible_duplicates = Counter(
            "rdc_possible_duplicates", "Events re-sent after a read timeout or a lost connection", registry=r
        )
        self.in_flight_bytes = Gauge("rdc_in_flight_bytes", "Body bytes of batches not yet answered", registry=r)
        self.buffered_bytes = Gauge(
            "rdc_buffered_bytes",
            "Memory held by in-flight events until settled (JSON, original value and key, overhead)",
            registry=r,
        )
        self.duplicates_suppressed = Counter(
            "rdc_duplicates_suppressed", "Records skipped: the ledger shows their result exists", registry=r
        )
        self._result_window = Histogram(
            "rdc_result_window_seconds",
            "RD's 200 to Kafka's acknowledgement of the batch's results",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self._delivery_latency = Histogram(
            "rdc_delivery_latency_seconds",
            "Consume to RD acceptance, oldest event of each accepted batch",
            buckets=_DELIVERY_BUCKETS,
            registry=r,
        )
        self.oldest_unsettled_age = Gauge(
            "rdc_oldest_unsettled_age_seconds", "Age of the oldest unsettled consumed offset", registry=r
        )
        self._lag = Gauge(
            "rdc_consumer_lag", "High watermark minus committed position", ["topic", "partition"], registry=r
        )
        self.assigned_partitions = Gauge("rdc_assigned_partitions", "Partitions assigned to this member", registry=r)
        self._rate = Gauge(
            "rdc_rate_per_second", "Requests/s the adaptive rate allows now (0: unlimited)", ["account"], registry=r
        )
        self.pause_seconds = Counter("rdc_rate_pause_seconds", "Seconds every lane was held by 429s", registry=r)
        self._ready = Gauge("rdc_ready", "1 while /readyz answers 200 (read at each scrape)", registry=r)
        self._accounts: list[str] = []
        self.accounts([DEFAULT_ACCOUNT])  # the single-account case; `accounts()` replaces it

    # -- per record / per batch ------------------------------------------------------------------------

    def dead_lettered(self, stage: str, reason: str, count: int = 1) -> None:
        """`count` records dead-lettered at `stage` (decode, map, send) for `reason` (README's reason table)."""
        self._dead_lettered.labels(stage, reason).inc(count)

    def skipped(self, mapping: str) -> None:
        """One record skipped by `mapping` (committed without being sent)."""
        self._skipped.labels(mapping).inc()

    def batch_done(self, outcome: str) -> None:
        """A batch reached its final outcome: delivered, split, abandoned or failed."""
        self._batches.labels(outcome).inc()

    def delivered(self, count: int, account: str = DEFAULT_ACCOUNT) -> None:
        """`count` events RD accepted for `account`."""
        self._delivered.labels(account).inc(count)

    def observe_request(
        self,
        status: int | None,
        seconds: float,
        body_bytes: int,
        events: int,
        max_bytes: int,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        """One POST to RD: `status` None when no answer came (timeout, connection error)."""
        self._requests.labels(status_class(status), account).inc()
        self._duration.observe(seconds)
        self._body_bytes.observe(body_bytes)
        self._fill.observe(body_bytes / max_bytes if max_bytes > 0 else 0.0)
        self._events_per_request.observe(events)

    def retry(self, cause: str, account: str = DEFAULT_ACCOUNT) -> None:
        """A batch will be retried because of `cause` (the retry decision's reason, e.g. `status_503`)."""
        self._retries.labels(cause, account).inc()

    def rate_limited(self, kind: str, account: str = DEFAULT_ACCOUNT) -> None:
        """One 429: `account` (an account-level limit: the rate is cut) or `contact` (a per-contact limit)."""
        self.rd_throttled.labels(kind, account).inc()

    def account_blocked(self, account: str, blocked: bool) -> None:
        self._account_blocked.labels(account).set(1 if blocked else 0)

    def accounts(self, names: Iterable[str]) -> None:
        """The configured accounts (call once at start): each one's series present at 0 (an alert on
        `increase()` sees the first one); the zero series of a former list (`default`, which `__init__` sets
        up for the single-account case) are removed when they are not among `names`."""
        names = list(names)
        for name in self._accounts:
            if name not in names:
                self._account_series(name, remove=True)
        for name in names:
            self._account_series(name, remove=False)
        self._accounts = names

    def _account_series(self, account: str, remove: bool) -> None:
        labelled: list[tuple[Counter | Gauge, tuple[str, ...]]] = [
            (self._delivered, ()),
            (self._account_blocked, ()),
            *((self.rd_throttled, (kind,)) for kind in _RATE_LIMIT_KINDS),
            *((self._token_refreshes, (result,)) for result in TOKEN_REFRESH_RESULTS),
            *((self._requests, (status,)) for status in STATUS_CLASSES),
            *((self._retries, (cause,)) for cause in RETRY_CAUSES),
        ]
        for metric, values in labelled:
            if remove:
                with contextlib.suppress(KeyError):
                    metric.remove(*values, account)
            else:
                metric.labels(*values, account)

    def watch_ready(self, read: Callable[[], bool]) -> None:
        """Expose `read()` (what /readyz says: `Health.readiness()[0]`) as `rdc_ready`, read at each scrape."""
        self._ready.set_function(lambda: 1.0 if read() else 0.0)

    def watch_rate(self, account: str, read: Callable[[], float]) -> None:
        """Expose `read()` (requests/s; math.inf: unlimited, shown as 0) as the rate of `account`, read at
        each scrape."""
        self._rate.labels(account).set_function(lambda: 0.0 if math.isinf(rate := read()) else rate)

    def token_refreshed(self, ok: bool, account: str = DEFAULT_ACCOUNT) -> None:
        self._token_refreshes.labels("ok" if ok else "failed", account).inc()

    def token_adopted(self, account: str = DEFAULT_ACCOUNT) -> None:
        """Tokens taken from the token store (another replica's refresh) instead of refreshing."""
        self._token_refreshes.labels("adopted", account).inc()

    def observe_result_window(self, seconds: float) -> None:
        """RD's 200 to the acknowledgement of the last result of that batch (per batch)."""
        self._result_window.observe(max(0.0, seconds))

    def observe_delivery_latency(self, seconds: float) -> None:
        """Consume-to-acceptance time of the oldest event of an accepted batch."""
        self._delivery_latency.observe(max(0.0, seconds))

    # -- lag -----------------------------------------------------------------------------------------

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self._lag.labels(topic, str(partition)).set(max(0, lag))

    def update_lag(self, consumer: WatermarkSource, committed: Mapping[tuple[str, int], int]) -> None:
        """Set the lag of each partition in `committed` ((topic, partition) -> next offset to consume,
        i.e. the committed position) from the high watermark the consumer cached from its fetches.
        Partitions with no cached watermark yet are left as they are. Never does network I/O."""
        from confluent_kafka import TopicPartition

        for (topic, partition), position in committed.items():
            watermarks = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            if not watermarks:
                continue
            high = int(watermarks[1])
            if high == _OFFSET_INVALID or high < 0 or position < 0:
                continue
            self.set_lag(topic, partition, high - position)

    def forget_partitions(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop the lag series of partitions this member no longer owns (call on revoke and lost)."""
        for topic, partition in partitions:
            with contextlib.suppress(KeyError):
                self._lag.remove(topic, str(partition))

    # -- exposition ----------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric above (what `/metrics` answers without an `Accept`)."""
        return generate_latest(self.registry)
