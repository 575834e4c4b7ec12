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

from connector.config.load import KAFKA_ENV_PREFIX as KAFKA_ENV_PREFIX
from connector.config.load import load_settings
from connector.config.secret import Secret
from connector.config.settings import EOF_IS_SAFE, Settings
from connector.config.specs import ENV_PREFIX as ENV_PREFIX
from connector.config.specs import SPECS, Spec

__all__ = ["EOF_IS_SAFE", "SPECS", "Secret", "Settings", "Spec", "load_settings"]
