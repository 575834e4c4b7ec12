"""`rd-connector config [--config FILE]`: the effective configuration, every setting with its value and where
it came from (`default`, `file` or `env`), grouped as in `run --help`; then the librdkafka settings and every
RD account (`Settings.rd_accounts()`) with the source of each of its keys.

Secrets never show: a `Secret` setting, every account's credentials and every librdkafka value that
`Settings.secret_values()` lists are printed as `***`, and the whole text then goes through the log
`Redactor` with every configured secret (as `check` does). Exit 0 when the configuration loads (a last line
says whether `run` would start with it), 2 with the configuration error when it cannot be loaded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import textwrap
from collections.abc import Mapping

from connector.config import Settings, load_settings
from connector.config.accounts import DEFAULT_ACCOUNT, Account
from connector.config.describe import grouped_specs, shown_value
from connector.config.sources import AccountSources, Sources, config_sources
from connector.config.specs import SPECS
from connector.errors import EXIT_CONFIG, EXIT_OK, ConfigError
from connector.ops.logs import Redactor

__all__ = ["cli", "render"]

_NAME_WIDTH = max(len(spec.env) for spec in SPECS)


class _Lines:
    """`  name  source  value` rows, the value wrapped under itself within `width`."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.lines: list[str] = []

    def row(self, name: str, source: str, value: str, indent: int = 2) -> None:
        head = f"{' ' * indent}{name:<{_NAME_WIDTH + 2 - indent}}  {source:<7}  "
        room = max(self.width - len(head), 20)
        parts = textwrap.wrap(value, room, break_long_words=False, break_on_hyphens=False) or [""]
        self.lines.append(head + parts[0])
        self.lines += [" " * len(head) + part for part in parts[1:]]

    def text(self, line: str = "") -> None:
        self.lines += textwrap.wrap(line, self.width, subsequent_indent="  ") if line else [""]


def render(settings: Settings, sources: Sources, width: int = 80) -> str:
    """The effective configuration as text (secrets masked), `width` columns wide where values allow."""
    out = _Lines(width)
    where = f"the file {sources.path}" if sources.path else "no file"
    out.text(f"Effective configuration: defaults, then {where}, then RDC_* variables (they win). Secrets: ***.")
    secrets = set(settings.secret_values())
    for title, specs in grouped_specs():
        out.text()
        out.text(f"{title}:")
        for spec in specs:
            out.row(spec.env, sources.settings[spec.name], shown_value(getattr(settings, spec.name), spec.name))
    out.text()
    out.text("librdkafka settings ([kafka] table, RDC_KAFKA__<KEY>):")
    for key, value in sorted(settings.kafka.items()):
        out.row(key, sources.kafka.get(key, "file"), "***" if value in secrets else value)
    if not settings.kafka:
        out.text("  (none)")
    out.text()
    out.text("RD accounts:")
    from_rdc_rd = settings.default_account() is not None  # then the first account is `default`, of RDC_RD_*
    for i, account in enumerate(settings.rd_accounts()):
        _account(out, account, None if from_rdc_rd and i == 0 else sources.accounts.get(account.name))
    if not settings.rd_accounts():
        out.text("  (none: no RD credentials)")
    out.text()
    try:
        settings.require_pipeline()
        out.text("run: this configuration is complete (rd-connector check also tries it against Kafka and RD).")
    except ConfigError as exc:
        out.text(f"run would stop: {exc}")
    return Redactor(secrets).redact("\n".join(out.lines))


def _account(out: _Lines, account: Account, table: AccountSources | None) -> None:
    flow = "refresh flow" if account.refresh_flow else "static access token"
    budget = f"{account.requests_per_minute} requests/min" if account.requests_per_minute else "no request budget"
    if table is None:  # `default`, from the RDC_RD_* settings
        out.text(f"  {DEFAULT_ACCOUNT}: {flow}, {account.base_url}, {budget} (the RDC_RD_* settings above)")
        return
    out.text(f"  [accounts.{account.name}]: {flow}, {budget}")
    values: Mapping[str, object] = {
        "rd_access_token": account.access_token,
        "rd_client_id": account.client_id,
        "rd_client_secret": account.client_secret,
        "rd_refresh_token": account.refresh_token,
        "base_url": account.base_url,
        "requests_per_minute": account.requests_per_minute,
    }
    for key, value in values.items():
        source, detail = table.of(key)
        if value is None and source == "default":
            continue
        shown = shown_value(value)
        if detail:
            shown += f" (from ${detail})" if source == "env" else f" (read from {detail})"
        out.row(key, source, shown, indent=4)


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rd-connector config",
        description="Print the effective configuration: every setting, its value and where it comes from "
        "(default, file or env), secrets masked. Exit 2 if it cannot be loaded.",
    )
    parser.add_argument("--config", help="TOML configuration file (default: RDC_CONFIG_FILE; the environment wins)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(os.environ, args.config)
        sources = config_sources(os.environ, args.config)
    except ConfigError as exc:
        print(f"rd-connector: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(render(settings, sources, min(shutil.get_terminal_size().columns, 100)))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(cli())
