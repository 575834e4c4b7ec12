"""The set of mappings in force: the user's (`RDC_MAPPINGS`) before the bundled ones, each compiled once per
record schema, on first use, and the check of all of them against the known schemas before the first record.

Choosing a mapping: the first user mapping of the record's full name whose `topics` include the record's
topic (or that has no `topics`), else the bundled one. At most one user mapping may cover a (record, topic):
two are a `MappingFileError`. A record no mapping covers is refused `unknown_record`.

A schema first seen at run time (a Schema Registry id of a record no known schema has) is compiled at first
sight; if the mapping does not fit it, one warning is logged for that schema and its records are refused
`schema_mismatch` (the message names the path), while records of other schemas keep flowing.

`Mappings` is built from file texts (picklable: a decode worker builds its own from the same texts).
"""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from connector.avro.catalog import SchemaCatalog, SchemaEntry, default_catalog
from connector.config.accounts import default_account_of
from connector.errors import ConfigError, MappingError
from connector.mapping.compile_account import check_account_names
from connector.mapping.compiler import MapFunction, compile_mapping
from connector.mapping.event import RdEvent, Skipped
from connector.mapping.spec import MappingFile, MappingFileError, MappingSpec, Problem, TestSpec
from connector.mapping.spec_parser import parse_text
from connector.mapping.suggest import suggest

__all__ = ["BUNDLED_FILE", "FileText", "Mappings", "bundled_texts", "checked_mappings", "read_mapping_texts"]

BUNDLED_FILE: Final = "ecommerce.yaml"
FileText = tuple[str, str]  # (label used in messages: the path, text)

_log = logging.getLogger("connector.mapping")


def bundled_texts() -> tuple[FileText, ...]:
    """The mapping file shipped in the package (the bundled schemas' mappings)."""
    text = importlib.resources.files("connector.mapping").joinpath(BUNDLED_FILE).read_text("utf-8")
    return ((f"bundled {BUNDLED_FILE}", text),)


def read_mapping_texts(path: str) -> tuple[FileText, ...]:
    """The texts of `RDC_MAPPINGS`: one YAML file, or every `*.yaml` / `*.yml` of a directory (sorted).
    Raises `ConfigError` naming the path when it does not exist, cannot be read or holds no YAML file."""
    where = Path(path)
    if where.is_dir():
        files = sorted(p for p in where.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise ConfigError(f"RDC_MAPPINGS={path!r} is a directory without *.yaml files")
    elif where.is_file():
        files = [where]
    else:
        raise ConfigError(f"RDC_MAPPINGS={path!r} does not exist: expected a YAML file or a directory of *.yaml")
    try:
        return tuple((str(p), p.read_text("utf-8")) for p in files)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"RDC_MAPPINGS: {exc}") from exc


def checked_mappings(
    path: str | None, catalog: SchemaCatalog, *, registry: bool = False, accounts: Sequence[str] | None = None
) -> tuple[tuple[FileText, ...], Mappings]:
    """The texts of `RDC_MAPPINGS` (`path`; None: none) and the `Mappings` they make with the bundled ones,
    every mapping compiled against the known schema of its record, and the accounts each names checked against
    `accounts` (the configured RD accounts; None: not checked). Raises `MappingFileError` listing every
    problem of every file (a `ConfigError`: `run` exits 2)."""
    texts = read_mapping_texts(path) if path else ()
    mappings = Mappings(texts, catalog=catalog)
    problems = [p for _, found, _ in mappings.check(catalog, registry=registry) for p in found]
    if accounts is not None:
        problems += [p for _, found in mappings.check_accounts(accounts) for p in found]
    if problems:
        raise MappingFileError(problems)
    return texts, mappings


class Mappings:
    """User and bundled mappings. `map` is the hot path (one dict lookup, then the compiled function)."""

    def __init__(
        self,
        user: Sequence[FileText] = (),
        bundled: Sequence[FileText] | None = None,
        catalog: SchemaCatalog | None = None,
    ) -> None:
        """Parse every file; raises `MappingFileError` listing every syntax problem and every overlap.
        `catalog` gives the schema of a record mapped without one (`map(..., schema=None)`)."""
        self.user_files = _parse_all(user)
        self.bundled_files = _parse_all(bundled_texts() if bundled is None else bundled)
        self._catalog = catalog
        self._user = _by_record(self.user_files)
        self._bundled = _by_record(self.bundled_files)
        problems = _overlaps(self.user_files)
        if problems:
            raise MappingFileError(problems)
        self._functions: dict[tuple[SchemaEntry | str, str], MapFunction] = {}
        self._warned: set[SchemaEntry] = set()

    @property
    def tests(self) -> list[TestSpec]:
        return [t for f in (*self.user_files, *self.bundled_files) for t in f.tests]

    def specs(self) -> list[MappingSpec]:
        """Every mapping, user ones first."""
        return [m for f in (*self.user_files, *self.bundled_files) for m in f.mappings]

    def named(self, name: str) -> MappingSpec | None:
        """The mapping called `name` (a user one before a bundled one of that name)."""
        return next((m for m in self.specs() if m.name == name), None)

    def select(self, full_name: str, topic: str) -> MappingSpec | None:
        """The mapping of records `full_name` read from `topic` (user ones first), if any."""
        for table in (self._user, self._bundled):
            for spec in table.get(full_name, ()):
                if spec.topics is None or topic in spec.topics:
                    return spec
        return None

    def map(
        self, full_name: str, record: Mapping[str, Any], schema: SchemaEntry | None, topic: str
    ) -> RdEvent | Skipped:
        """The event for `record` (of `schema`, or of the catalog's schema of `full_name` when None) read
        from `topic`, or `Skipped`. Raises `MappingError` (see `connector.mapping.compiler`, and
        `unknown_record`, `schema_mismatch`)."""
        function = self._functions.get((schema or full_name, topic))
        if function is None:
            function = self._bind(full_name, schema, topic)
        return function(record)

    def _bind(self, full_name: str, schema: SchemaEntry | None, topic: str) -> MapFunction:
        spec = self.select(full_name, topic)
        if spec is None:
            function = _refuser("unknown_record", f"no mapping for Avro record {full_name!r}")
        else:
            entry = schema or (self._catalog or default_catalog()).get(full_name)
            if entry is None:
                function = _refuser("unknown_record", f"mapping {spec.name}: no schema is known for {full_name!r}")
            else:
                function = self._compiled(spec, entry)
        self._functions[(schema or full_name, topic)] = function
        return function

    def _compiled(self, spec: MappingSpec, entry: SchemaEntry) -> MapFunction:
        compiled = compile_mapping(spec, entry.definition)
        if compiled.function is not None:
            return compiled.function
        origin = f" ({entry.origin})" if entry.origin else ""
        first = compiled.problems[0]
        message = (
            f"mapping {spec.name} does not fit this schema of {entry.full_name}{origin}: {first.field}: {first.message}"
        )
        if entry not in self._warned:  # once per schema, not per record
            self._warned.add(entry)
            _log.warning(
                "mapping_schema_mismatch mapping=%s record=%s schema=%s problems=%d first=%s",
                spec.name, entry.full_name, entry.origin or entry.header[2:].hex(), len(compiled.problems),
                "; ".join(f"{p.field}: {p.message}" for p in compiled.problems),
            )  # fmt: skip
        return _refuser("schema_mismatch", message)

    def check(self, catalog: SchemaCatalog, registry: bool = False) -> list[tuple[MappingSpec, list[Problem], str]]:
        """Compile every mapping in force against the known schema of its record: one (mapping, problems,
        note) per mapping. A record no known schema has is a problem without a registry (`registry=False`),
        and otherwise checked at first sight (the note says so). Bundled mappings a user one replaces for
        all topics are left out."""
        results: list[tuple[MappingSpec, list[Problem], str]] = []
        user = [m for f in self.user_files for m in f.mappings]
        bundled = [m for f in self.bundled_files for m in f.mappings if not self._replaced(m)]
        for spec in (*user, *bundled):
            entry = catalog.get(spec.record)
            if entry is None:
                if registry:
                    results.append((spec, [], "no known schema: checked when the registry first gives one"))
                    continue
                guess = suggest(spec.record, catalog.names())
                message = (
                    f"record {spec.record} is not a known schema (bundled or RDC_SCHEMA_DIR){guess}"
                    "; with RDC_SCHEMA_REGISTRY_URL it would be checked when first seen"
                )
                results.append((spec, [spec.problem(spec.line, "record", message)], ""))
                continue
            problems = compile_mapping(spec, entry.definition).problems
            origin = f" ({entry.origin})" if entry.origin else ""
            results.append((spec, problems, f"fits {entry.full_name}{origin}"))
        return results

    def check_accounts(self, accounts: Sequence[str]) -> list[tuple[MappingSpec, list[Problem]]]:
        """The accounts each mapping names checked against `accounts` (the configured ones): one (mapping,
        problems) per mapping. With several accounts and none called `default`, a user mapping must name one
        (a bundled mapping is only checked for the names it gives)."""
        default = default_account_of(accounts)
        results = [(spec, check_account_names(spec, accounts, default)) for f in self.user_files for spec in f.mappings]
        for spec in (m for f in self.bundled_files for m in f.mappings):
            results.append((spec, check_account_names(spec, accounts, default) if spec.account is not None else []))
        return results

    def _replaced(self, bundled: MappingSpec) -> bool:
        return any(spec.topics is None for spec in self._user.get(bundled.record, ()))


def _refuser(reason: str, message: str) -> MapFunction:
    def refuse(record: Mapping[str, Any]) -> RdEvent:
        raise MappingError(reason, message)

    return refuse


def _parse_all(texts: Iterable[FileText]) -> tuple[MappingFile, ...]:
    files, problems = [], []
    for label, text in texts:
        try:
            files.append(parse_text(text, label))
        except MappingFileError as exc:
            problems += exc.problems
        except ConfigError as exc:  # not YAML
            problems.append(Problem(label, getattr(exc, "line", 0), None, None, getattr(exc, "message", str(exc))))
    if problems:
        raise MappingFileError(problems)
    return tuple(files)


def _by_record(files: Iterable[MappingFile]) -> dict[str, list[MappingSpec]]:
    table: dict[str, list[MappingSpec]] = {}
    for spec in (m for f in files for m in f.mappings):
        table.setdefault(spec.record, []).append(spec)
    return table


def _overlaps(files: Iterable[MappingFile]) -> list[Problem]:
    """Two user mappings of one name, or covering one (record, topic)."""
    problems: list[Problem] = []
    seen: dict[str, MappingSpec] = {}
    for spec in (m for f in files for m in f.mappings):
        other = seen.get(spec.name)
        if other is not None:
            problems.append(
                spec.problem(spec.line, "name", f"the name is taken by the mapping at {other.file}:{other.line}")
            )
            continue
        for earlier in seen.values():
            if earlier.record != spec.record:
                continue
            both = None if spec.topics is None or earlier.topics is None else set(spec.topics) & set(earlier.topics)
            if both is None or both:
                topics = "every topic" if both is None else "topic(s) " + ", ".join(sorted(both))
                problems.append(
                    spec.problem(
                        spec.line,
                        "record",
                        f"mapping '{earlier.name}' ({earlier.file}:{earlier.line}) already maps {spec.record} on "
                        f"{topics}: one record (and topic) has at most one mapping; use 'topics' to tell them apart",
                    )
                )
        seen[spec.name] = spec
    return problems
