"""`rd-connector` command line: one subcommand per job, each owned by the module that implements it.

Each entry maps a subcommand to `module:function`, a function `(argv: list[str]) -> int` with its own
argparse, imported only when that subcommand runs (so `rd-connector run` never imports the test broker).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Final

__all__ = ["COMMANDS", "main"]

COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "run": ("connector.commands.run", "run the connector (configured by RDC_* variables and an optional TOML file)"),
    "demo": ("connector.commands.demo", "embedded broker + mock RD API + sample events, end to end, with a summary"),
    "mock-rd": ("connector.testing.mock_rd", "serve the mock RD Station API on loopback"),
    "produce-sample": ("connector.commands.sample", "produce realistic sample e-commerce events to a topic"),
    "check": (
        "connector.commands.check",
        "preflight: validate the configuration, reach Kafka, the Schema Registry and RD",
    ),
    "config": (
        "connector.commands.show_config",
        "print the effective configuration: each setting, its value and source, secrets masked",
    ),
    "mapping": ("connector.commands.mapping", "mapping check | mapping test: RDC_MAPPINGS against schemas and tests"),
    "dlq": ("connector.commands.dlq", "dlq replay: send dead letters again to their source topic (filters, resumable)"),
    "dry-run": (
        "connector.commands.dry_run",
        "read N records by assignment, decode and map them, print events; sends nothing",
    ),
}


def _usage() -> str:
    lines = ["usage: rd-connector COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<16}{help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "rd-connector COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from connector import __version__

        print(f"rd-connector {__version__}")
        return 0
    entry = COMMANDS.get(args[0])
    if entry is None:
        print(f"rd-connector: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    command: Callable[[list[str]], int] = importlib.import_module(entry[0]).cli
    return command(args[1:])


if __name__ == "__main__":
    sys.exit(main())
