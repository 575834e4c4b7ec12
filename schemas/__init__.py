"""Avro schemas (the public input contract), shipped inside the package."""
