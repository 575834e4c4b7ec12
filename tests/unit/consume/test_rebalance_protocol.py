"""The rebalance protocol read from the consumer's configuration (or asked of a client that can tell)."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaException

from connector.config import load_settings
from connector.consume.rebalance_protocol import COOPERATIVE, EAGER, rebalance_protocol


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param({"partition.assignment.strategy": "cooperative-sticky"}, COOPERATIVE, id="cooperative-sticky"),
        pytest.param({"partition.assignment.strategy": " Cooperative-Sticky "}, COOPERATIVE, id="spaces-and-case"),
        pytest.param({"partition.assignment.strategy": "range"}, EAGER, id="range"),
        pytest.param({"partition.assignment.strategy": "roundrobin,range"}, EAGER, id="eager-list"),
        pytest.param({}, EAGER, id="librdkafka-default-range-roundrobin"),
        pytest.param({"group.protocol": "consumer", "partition.assignment.strategy": "range"}, COOPERATIVE, id="848"),
    ],
)
def test_protocol_of_the_configured_assignors(config: dict[str, str], expected: str) -> None:
    assert rebalance_protocol(config) == expected


def test_librdkafka_refuses_to_mix_the_two_kinds_so_the_configuration_decides() -> None:
    with pytest.raises(KafkaException, match="same protocol type"):
        Consumer({"group.id": "g", "partition.assignment.strategy": "range,cooperative-sticky"})


def test_a_client_that_can_tell_is_asked_first() -> None:
    class Telling:
        def rebalance_protocol(self) -> str:
            return EAGER

    class NotJoinedYet:
        def rebalance_protocol(self) -> str:
            return "NONE"

    config = {"partition.assignment.strategy": "cooperative-sticky"}
    assert rebalance_protocol(config, Telling()) == EAGER
    assert rebalance_protocol(config, NotJoinedYet()) == COOPERATIVE


def test_the_connector_defaults_to_cooperative_and_range_can_be_chosen() -> None:
    env = {"RDC_KAFKA_BOOTSTRAP_SERVERS": "k:9092", "RDC_TOPICS": "t", "RDC_RD_ACCESS_TOKEN": "x"}
    assert rebalance_protocol(load_settings(env).consumer_config()) == COOPERATIVE
    chosen = load_settings({**env, "RDC_KAFKA__PARTITION_ASSIGNMENT_STRATEGY": "range"}).consumer_config()
    assert chosen["partition.assignment.strategy"] == "range" and rebalance_protocol(chosen) == EAGER
