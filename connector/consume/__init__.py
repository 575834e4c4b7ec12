"""Reading Kafka: the fetch wake-up after a resume. (Per-partition state, rebalance, backpressure and registry
holds are still methods of `connector.pipeline.Pipeline`: their move here is issue 16's next step.)"""
