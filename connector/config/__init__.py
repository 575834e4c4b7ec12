"""Configuration: one frozen, typed `Settings` built from an optional TOML file plus `RDC_*` environment
variables (the environment wins). Nothing reads the environment at import time.

- `specs`: every setting's name, parser and help (`SPECS`), the same names as the README's table;
- `settings`: `Settings`, its checks for `run` and the librdkafka configuration of each kind of client;
- `load`: `load_settings`, the file and the environment (librdkafka settings pass through untouched);
- `librdkafka`: which librdkafka properties are consumer-only, producer-only or secret;
- `secret`: `Secret`, a value that never shows itself;
- `describe`: the settings grouped, with defaults and meanings (`run --help`); `sources`: where each value of
  a configuration came from (`config`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connector.config.load import KAFKA_ENV_PREFIX as KAFKA_ENV_PREFIX
    from connector.config.load import load_settings
    from connector.config.secret import Secret
    from connector.config.settings import EOF_IS_SAFE, Settings
    from connector.config.specs import ENV_PREFIX as ENV_PREFIX
    from connector.config.specs import SPECS, Spec

__all__ = ["EOF_IS_SAFE", "SPECS", "Secret", "Settings", "Spec", "load_settings"]

# The names below are imported on first use (PEP 562), not with the package: a decode worker imports only
# `accounts` (its mappings' default account), and `settings` would load librdkafka (confluent_kafka, which
# cost every worker 4-6 MiB of resident memory; `benchmarks/worker_rss.py`).
_HOMES = {
    "EOF_IS_SAFE": "settings",
    "KAFKA_ENV_PREFIX": "load",
    "ENV_PREFIX": "specs",
    "SPECS": "specs",
    "Secret": "secret",
    "Settings": "settings",
    "Spec": "specs",
    "load_settings": "load",
}


if not TYPE_CHECKING:  # hidden from mypy, which would take any name as Any: it checks those imported above

    def __getattr__(name: str) -> Any:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
        globals()[name] = value  # once: later lookups do not come here
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_HOMES})
