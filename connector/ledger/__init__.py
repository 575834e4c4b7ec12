"""The results topic as a ledger: checkpoints and the assignment scan that suppresses duplicates.

- `scan`: `Ledger`, the pipeline's face of the ledger (the overview: why, and what remains);
- `results`: which results partition holds a source partition's results, and whose result is ours;
- `checkpoints`: the ledger topic's records and the results offset each one records;
- `reader`: the scans at assignment, reading the ledger and results topics back on a thread;
- `suppression`: which records a scan settles, a crash told from a reset backwards.
"""
