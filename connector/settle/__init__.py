"""What happens after RD answers: results, dead letters (built and fitted to Kafka's limit), offsets. The commit
itself is still `connector.pipeline.Pipeline._commit` (then the ledger checkpoint)."""
