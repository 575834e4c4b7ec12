"""`rd-connector run`: build the pipeline from `Settings`, run it until SIGTERM/SIGINT/SIGHUP (all three
drain, commit and stop; SIGHUP does not reload), exit with a code.

Exit codes (the full list is in `connector.errors`): 0 stopped cleanly, everything consumed settled and
committed; 1 unexpected error; 2 configuration error; 3 RD refused us for good (auth, forbidden, not
found); 4 ambiguous RD answer (a 200 without one UUID per event); 5 a batch kept failing past
`RDC_RETRY_MAX_ELAPSED_S`; 6 stopped with work left unsettled at the shutdown deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from types import FrameType

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from connector.avro import DELIVERY_RESULT, Decoder, SchemaCatalog, registry_from_settings
from connector.commands.rd_accounts import account_edges
from connector.config import Settings, load_settings
from connector.config.accounts import default_account_of
from connector.config.describe import settings_help
from connector.consume.rebalance_protocol import COOPERATIVE, rebalance_protocol
from connector.deliver.lanes import Lane
from connector.errors import EXIT_CONFIG, EXIT_CRASH, ConfigError, ConnectorError
from connector.ledger.scan import Ledger
from connector.mapping.mappings import checked_mappings
from connector.ops.gc_tuning import tune_gc
from connector.ops.kafka_clients import drain_log, new_admin, new_consumer, new_producer
from connector.ops.logs import configure_logging
from connector.ops.metrics import Metrics
from connector.ops.probe_server import Health, ProbeServer
from connector.pipeline import Pipeline
from connector.settle.letter_limit import learn_letter_limit, producer_config_for
from connector.settle.reporter import Reporter, SettledCallback
from connector.transform.process import DecoderSpec, InProcess, WorkerPool

__all__ = ["build_pipeline", "cli"]


_log = logging.getLogger("connector.commands.run")


def _decoder_spec(settings: Settings, mapping_texts: tuple[tuple[str, str], ...] = ()) -> DecoderSpec:
    password = settings.schema_registry_password.reveal() if settings.schema_registry_password else None
    return DecoderSpec(
        settings.schema_dir,
        settings.schema_registry_url,
        settings.schema_registry_username,
        password,
        dict(settings.topic_writer_schemas),
        mapping_texts,
        (settings.log_level, settings.log_format),
        settings.avro_decoder,
    )


def build_pipeline(
    settings: Settings,
    metrics: Metrics | None = None,
    health: Health | None = None,
    closing: contextlib.ExitStack | None = None,
) -> Pipeline:
    """Wire the edges (Kafka consumer and producer, RD client, registry) into a `Pipeline`.

    `closing` gets the close of each HTTP client built here (the RD client's, which the token refresh
    shares, and the Schema Registry's): `cli` closes them when the run ends, or when the build fails."""
    metrics = metrics or Metrics()
    health = health or Health(max_failing_s=settings.ready_max_failing_s)
    metrics.watch_ready(lambda: health.readiness()[0])
    settings.require_pipeline()
    catalog = SchemaCatalog.load(settings.schema_dir)
    # Every mapping against every known schema, before anything connects: a broken file stops here (exit 2).
    # The accounts the mappings name too: each must be configured, and with several accounts and no `default`
    # every user mapping must name one.
    mapping_texts, mappings = checked_mappings(
        settings.mappings,
        catalog,
        registry=settings.schema_registry_url is not None,
        accounts=[account.name for account in settings.rd_accounts()],
    )
    registry = registry_from_settings(settings)
    if registry is not None and closing is not None:
        closing.callback(registry.close)
    decoder = Decoder(
        catalog, registry=registry, plain_topics=settings.topic_writer_schemas, avro_decoder=settings.avro_decoder
    )
    result_schema_id = None
    if registry is not None:
        result_schema_id = registry.register(f"{settings.results_topic}-value", catalog[DELIVERY_RESULT].definition)

    admin = new_admin(settings.kafka_common())
    try:
        letter_limit = learn_letter_limit(admin, settings.dlq_topic, settings.producer_config())
    finally:
        drain_log(admin)

    def reporting_producer() -> Producer:
        return new_producer(producer_config_for(settings.producer_config(), letter_limit))

    producer = reporting_producer()
    edges = account_edges(settings, metrics, health, closing)
    destinations = {edge.name: edge.destination for edge in edges}
    ledger = _ledger(settings, decoder, destinations) if settings.effectively_once else None

    def reporter(on_settled: SettledCallback) -> Reporter:
        return Reporter(
            producer,
            settings.results_topic,
            settings.dlq_topic,
            on_settled,
            result_schema_id,
            reporting_producer,
            metrics,
            results_partition=ledger.results_partition if ledger else None,
            on_result_offsets=ledger.results_acked if ledger else None,
            letter_max_bytes=letter_limit.bytes,
            log_values=settings.log_record_values,
            writer=(settings.group_id, destinations),
            base_of=ledger.base if ledger else None,
        )

    # One account: RD refusing its credentials stops the connector (exit 3), as before accounts. Several: that
    # account blocks and is tried again every RDC_ACCOUNT_RETRY_S, the others flow (decision 0016).
    blocked_retry_s = settings.account_retry_s if len(edges) > 1 else None

    def lane(index: int, report: Reporter) -> dict[str, Lane]:
        return {
            edge.name: Lane(
                index,
                edge.client,
                report,
                backoff_initial_s=settings.retry_backoff_initial_ms / 1000,
                backoff_max_s=settings.retry_backoff_max_ms / 1000,
                max_bytes=settings.batch_max_bytes,
                gate=edge.gate,
                max_elapsed_s=settings.retry_max_elapsed_s,
                metrics=metrics,
                health=health,
                account=edge.name,
                blocked_retry_s=blocked_retry_s,
            )
            for edge in edges
        }

    def budget_share(share: float) -> None:
        for edge in edges:
            edge.gate.set_share(share)

    consumer_config = settings.consumer_config()
    workers = decode_workers(settings)
    return Pipeline(
        consumer=new_consumer(consumer_config),
        topics=settings.topics,
        transform=WorkerPool(_decoder_spec(settings, mapping_texts), workers)
        if workers
        else InProcess(decoder, mappings),
        reporter_factory=reporter,
        lane_factory=lane,
        lanes=settings.max_in_flight,
        batch_max_bytes=settings.batch_max_bytes,
        batch_max_events=settings.batch_max_events,
        linger_s=settings.batch_linger_ms / 1000,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        revoke_timeout_s=settings.shutdown_timeout_s,  # README: a revoke waits RDC_SHUTDOWN_TIMEOUT_S too
        max_buffered_bytes=settings.max_buffered_bytes,
        metrics=metrics,
        health=health,
        ledger=ledger,
        commit_interval_s=settings.commit_interval_ms / 1000,
        budget_share=budget_share,  # each account's budget is the group's: each member spends its share
        default_account=default_account_of([account.name for account in settings.rd_accounts()]),
        cooperative=rebalance_protocol(consumer_config) == COOPERATIVE,
    )


def decode_workers(settings: Settings) -> int:
    """`RDC_DECODE_WORKERS`, with `auto` resolved: a worker when this process may run on 2+ CPUs (its CPU
    affinity; a container's CPU quota is not visible here, so set 0 under a limit below 2 CPUs)."""
    if settings.decode_workers is not None:
        return settings.decode_workers
    return 1 if len(os.sched_getaffinity(0)) >= 2 else 0


def _ledger(settings: Settings, decoder: Decoder, destinations: Mapping[str, str]) -> Ledger:
    """The ledger over the results topic; creates the compacted ledger topic if it is missing."""
    admin = new_admin(settings.kafka_common())
    try:
        topics = admin.list_topics(timeout=15).topics
    except KafkaException as exc:
        raise ConnectorError(f"cannot reach Kafka to prepare the ledger: {exc}") from exc
    finally:
        drain_log(admin)
    results = topics.get(settings.results_topic)
    if results is None or results.error is not None or not results.partitions:
        raise ConfigError(
            f"RDC_RESULTS_TOPIC={settings.results_topic!r} does not exist: create it (RDC_EFFECTIVELY_ONCE "
            "reads it as a ledger, so its partition count must be known)"
        )
    if settings.ledger_topic not in topics:
        _log.info("ledger_topic_create topic=%s cleanup.policy=compact", settings.ledger_topic)
        future = admin.create_topics(
            [
                NewTopic(
                    settings.ledger_topic, num_partitions=1, replication_factor=-1, config={"cleanup.policy": "compact"}
                )
            ]
        )[settings.ledger_topic]
        try:
            future.result(15)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ConnectorError(f"cannot create RDC_LEDGER_TOPIC={settings.ledger_topic!r}: {exc}") from exc
        finally:
            drain_log(admin)
    return Ledger(
        consumer_config=settings.consumer_config(),
        decoder=decoder,
        results_topic=settings.results_topic,
        results_partitions=len(results.partitions),
        ledger_topic=settings.ledger_topic,
        group_id=settings.group_id,
        destinations=frozenset(destinations.values()),
    )


def cli(argv: list[str] | None = None) -> int:
    width = min(shutil.get_terminal_size().columns, 100) - 2  # as argparse wraps its own part
    parser = argparse.ArgumentParser(
        prog="rd-connector run",
        description="Run the connector.",
        epilog=settings_help(width),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="TOML configuration file (environment variables win)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as closing:  # the HTTP clients build_pipeline made, closed when run ends
        return _run(args.config, closing)


def _run(config: str | None, closing: contextlib.ExitStack) -> int:
    try:
        settings = load_settings(os.environ, config)
        configure_logging(settings.log_level, settings.log_format, settings.secret_values())
        metrics, health = Metrics(), Health(max_failing_s=settings.ready_max_failing_s)
        pipeline = build_pipeline(settings, metrics, health, closing)
    except ConfigError as exc:
        print(f"rd-connector: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ConnectorError as exc:
        print(f"rd-connector: cannot start: {exc}", file=sys.stderr)
        return EXIT_CRASH
    probe = None
    if settings.metrics_port:
        try:
            probe = ProbeServer(health, metrics.registry, settings.metrics_host, settings.metrics_port).start()
        except OSError as exc:
            print(f"rd-connector: RDC_METRICS_PORT={settings.metrics_port} cannot be bound: {exc}", file=sys.stderr)
            return EXIT_CONFIG

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        _log.info("stopping signal=%s", signal.Signals(signum).name)
        pipeline.stop()

    # The pipeline thread and the lanes hand work to each other through the GIL; a 0.5 ms switch interval
    # (CPython's default is 5 ms) lets a lane waiting on RD's answer run sooner: +24% events/s in the
    # benchmark suite (14.6k -> 18.2k, 1 lane, mock latency 0).
    sys.setswitchinterval(0.0005)
    tune_gc()  # fewer, cheaper collections: see connector/ops/gc_tuning.py
    # SIGHUP (a closed terminal, some supervisors) stops like SIGTERM: there is nothing to reload, and dying
    # at once would skip the drain.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    began = time.monotonic()
    _log.info(
        "started topics=%s group=%s rd=%s accounts=%s metrics=%s decode_workers=%d",
        ",".join(settings.topics), settings.group_id, settings.rd_base_url,
        ",".join(account.name for account in settings.rd_accounts()), probe.url if probe else "off",
        decode_workers(settings),
    )  # fmt: skip
    try:
        code = pipeline.run()
    finally:
        if probe is not None:
            probe.stop()
    stats = pipeline.stats
    _log.info(
        "stopped exit_code=%d consumed=%d delivered=%d dead_lettered=%d tombstones=%d trimmed=%d unsettled=%d "
        "seconds=%.1f",
        code, stats.consumed, stats.delivered, stats.dead_lettered, stats.tombstones, stats.trimmed, stats.unsettled,
        time.monotonic() - began,
    )  # fmt: skip
    return code
