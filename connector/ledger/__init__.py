"""The results topic as a ledger: checkpoints and the assignment scan that suppresses duplicates."""
