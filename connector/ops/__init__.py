"""Operating it: metrics, health and the probe server, logs, GC tuning."""
