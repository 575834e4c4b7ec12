"""The commands behind `rd-connector`: run (the wiring), check, demo, sample, dry-run, mapping."""
