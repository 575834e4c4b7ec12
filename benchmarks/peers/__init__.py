"""Benchmark fixtures: the same job written with other frameworks. Not part of the package."""
