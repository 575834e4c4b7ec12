"""Avro for the connector: the schema catalog, the decoder of the three framings, the Schema Registry
client and the encoders (single-object, Confluent, plain)."""

from connector.avro.catalog import NAMESPACE, SchemaCatalog, SchemaEntry, default_catalog
from connector.avro.decoder import DecodedRecord, Decoder, SchemaSource, TypedRecord
from connector.avro.encoder import (
    DELIVERY_RESULT,
    Encoder,
    confluent_header,
    encode_delivery_result,
    encode_delivery_results,
)
from connector.avro.registry import SchemaRegistryClient, registry_client, registry_from_settings

__all__ = [
    "DELIVERY_RESULT",
    "NAMESPACE",
    "DecodedRecord",
    "Decoder",
    "Encoder",
    "SchemaCatalog",
    "SchemaEntry",
    "SchemaRegistryClient",
    "SchemaSource",
    "TypedRecord",
    "confluent_header",
    "default_catalog",
    "encode_delivery_result",
    "encode_delivery_results",
    "registry_client",
    "registry_from_settings",
]
