"""`rd-connector mapping check` and `rd-connector mapping test`: the mapping files of a configuration, checked
and tested without Kafka or RD (settings from `RDC_*` variables and `--config`, as `run` reads them).

- `check`: every mapping in force (RDC_MAPPINGS, then the bundled ones) compiled against the known schema of its
  record (bundled, RDC_SCHEMA_DIR) and, with RDC_SCHEMA_REGISTRY_URL, against the latest version of each subject
  that holds it (`<record full name>`, and `<topic>-value` for its topics or RDC_TOPICS); the accounts each names
  (`account:`) against the configured ones (`default` of RDC_RD_* credentials, `[accounts.<name>]` of the
  configuration file; their secret files and variables are not read), when any is configured. One line per
  mapping, every problem under it, then the accounts checked against. Exit 0 if all fit, 2 if not.
- `test`: the files' `tests:`; a field-level diff for each failure. Exit 0 if all pass, 1 if any fails, 2 for a
  broken file (or a test that cannot run: an unknown mapping, an input that is not a record of its schema).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from connector.avro import SchemaCatalog, SchemaRegistryClient, registry_from_settings
from connector.avro.catalog import schema_entry
from connector.config import Settings, load_settings
from connector.errors import EXIT_CONFIG as EXIT_BROKEN
from connector.errors import EXIT_FAILED, EXIT_OK, ConfigError, ConnectorError, DecodeError
from connector.mapping.compiler import compile_mapping, possible_event_types
from connector.mapping.file_tests import run_tests
from connector.mapping.mappings import Mappings, read_mapping_texts
from connector.mapping.spec import MappingSpec, Problem

__all__ = ["cli"]


def cli(argv: list[str] | None = None, env: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rd-connector mapping", description="Check and test mapping files.")
    parser.add_argument("action", choices=("check", "test"), help="check: against the schemas; test: run tests:")
    parser.add_argument("--config", help="TOML configuration file (environment variables win)")
    args = parser.parse_args(argv)
    out = out or sys.stdout
    try:
        settings = load_settings(os.environ if env is None else env, args.config, account_secrets=False)
        catalog = SchemaCatalog.load(settings.schema_dir)
        mappings = Mappings(read_mapping_texts(settings.mappings) if settings.mappings else (), catalog=catalog)
    except ConfigError as exc:
        print(f"mapping {args.action}: {exc}", file=out)
        return EXIT_BROKEN
    if not settings.mappings:
        print("note: RDC_MAPPINGS is not set: only the bundled mappings", file=out)
    if args.action == "check":
        return _check(settings, catalog, mappings, out)
    return _test(catalog, mappings, out)


def _check(settings: Settings, catalog: SchemaCatalog, mappings: Mappings, out: TextIO) -> int:
    registry = registry_from_settings(settings)
    broken = 0
    results = mappings.check(catalog, registry=registry is not None)
    accounts = [account.name for account in settings.rd_accounts()]
    of_accounts = {id(spec): found for spec, found in mappings.check_accounts(accounts)} if accounts else {}
    for spec, problems, note in results:
        problems = [*problems, *of_accounts.get(id(spec), [])]
        notes = [note] if note else []
        if registry is not None:
            try:
                found, more = _against_registry(spec, registry, settings)
            except (ConnectorError, DecodeError) as exc:
                found, more = [], [f"registry: {exc}"]
                problems = [*problems, spec.problem(spec.line, "record", f"the Schema Registry could not tell: {exc}")]
            problems = [*problems, *found]
            notes += more
        broken += bool(problems)
        types = ", ".join(possible_event_types(spec)) or ("RdEvent passthrough" if spec.builtin else "-")
        head = f"{'FAIL' if problems else 'OK':<4} {spec.name} ({spec.file}:{spec.line}): {spec.record} -> {types}"
        print(head + (f"; {'; '.join(notes)}" if notes and not problems else ""), file=out)
        for problem in _unique(problems):
            print(f"    {problem}", file=out)
    if registry is not None:
        registry.close()
    if accounts:
        print(f"accounts: the names in 'account:' checked against {', '.join(accounts)}", file=out)
    elif any(spec.account is not None for spec, _, _ in results):
        print("accounts: none configured (RDC_RD_* credentials, [accounts.<name>] in --config or RDC_CONFIG_FILE):"
              " the names in 'account:' are not checked", file=out)  # fmt: skip
    if broken:
        print(f"mapping check: {broken} of {len(results)} mapping(s) do not fit", file=out)
        return EXIT_BROKEN
    print(f"mapping check: all {len(results)} mapping(s) fit", file=out)
    return EXIT_OK


def _against_registry(
    spec: MappingSpec, registry: SchemaRegistryClient, settings: Settings
) -> tuple[list[Problem], list[str]]:
    """The problems of `spec` with the latest schema of each registry subject of its record, and notes."""
    subjects = [spec.record, *(f"{topic}-value" for topic in spec.topics or settings.topics)]
    problems: list[Problem] = []
    notes: list[str] = []
    for subject in dict.fromkeys(subjects):
        latest = registry.latest(subject)
        if latest is None or _name(latest[1]) != spec.record:
            continue
        schema_id, definition = latest
        entry = schema_entry(spec.record, definition, f"subject {subject}, schema id {schema_id}")
        found = compile_mapping(spec, entry.definition).problems
        problems += [Problem(p.file, p.line, p.mapping, p.field, f"{p.message} [{entry.origin}]") for p in found]
        notes += [] if found else [f"fits the registry's {entry.origin}"]
    if not notes and not problems:
        notes.append("no registry subject holds it")
    return problems, notes


def _name(definition: Any) -> str:
    if not isinstance(definition, dict):
        return ""
    name = str(definition.get("name", ""))
    return name if "." in name or not definition.get("namespace") else f"{definition['namespace']}.{name}"


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _test(catalog: SchemaCatalog, mappings: Mappings, out: TextIO) -> int:
    problems = [p for _, found, _ in mappings.check(catalog) for p in found]
    if problems:
        print(f"mapping test: the mapping files do not check ({len(problems)} problem(s)):", file=out)
        for problem in _unique(problems):
            print(f"    {problem}", file=out)
        return EXIT_BROKEN
    results = run_tests(mappings, catalog)
    for result in results:
        print(result.report(), file=out)
    counts = {status: sum(r.status == status for r in results) for status in ("pass", "fail", "error")}
    print(f"mapping test: {counts['pass']} passed, {counts['fail']} failed, {counts['error']} could not run", file=out)
    if counts["error"]:
        return EXIT_BROKEN
    return EXIT_FAILED if counts["fail"] else EXIT_OK
