"""What happens after RD answers, up to the commit.

- `reporter.py`      produces results and dead letters; their acknowledgements settle records
- `dead_letters.py`  the one dead-letter builder; `letter_limit.py` fits a letter to Kafka's limit
- `offsets.py`       the per-partition watermark (pure)
- `committer.py`     commit what is settled, then the ledger checkpoint; lag and the oldest unsettled age
"""
