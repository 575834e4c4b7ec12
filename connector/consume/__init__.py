"""Reading Kafka, and what this member knows of the partitions it owns.

- `partitions.py`  every owned partition's state in one object, and the one rule for whether it fetches
- `records.py`     what happens to each consumed record (the one place a record is tracked)
- `rebalance.py`   assign (and the ledger scan), revoke (drain, commit, abandon, rewind), lost
- `backpressure.py`  each lane's share of the buffer: pause over it, resume below half
- `holds.py`       Schema Registry outages: hold the partition at the record, retry later
- `fetch_wake.py`  wake librdkafka's fetchers after a resume
"""
