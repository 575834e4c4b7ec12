"""Decode + map + encode of consumed records, in this process or in a decode worker (`process.py`)."""
