"""Reading Kafka: per-partition state, rebalance, backpressure and registry holds, the fetch wake-up."""
