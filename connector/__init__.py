"""rd-connector: delivers Avro e-commerce events from Apache Kafka to RD Station Marketing."""

__version__ = "0.1.0"
