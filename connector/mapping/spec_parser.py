"""The mapping-file parser: YAML text -> `MappingFile` (version 1). Pure.

It checks the shape of a file only (keys, value kinds, path syntax). Whether its paths exist in a record
schema, and whether its fields and event types fit RD, is `connector.mapping.compiler`'s job. Every problem
found is collected (a person fixes a file in one go), each naming file, line, mapping and field;
`parse_text` raises `MappingFileError` with all of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from connector.errors import ConfigError
from connector.mapping.spec import (
    BUILTINS,
    DEAD_LETTER,
    SKIP,
    TO_KINDS,
    UNWRAPS,
    ConstValue,
    CountValue,
    EachValue,
    EventTypeSpec,
    Expect,
    MappingFile,
    MappingFileError,
    MappingSpec,
    PathValue,
    Problem,
    SumValue,
    TestSpec,
    Value,
)
from connector.mapping.suggest import suggest
from connector.mapping.yaml_lines import LineDict, LineList, load_yaml

__all__ = ["parse_file", "parse_text"]

_PATH: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_FILE_KEYS: Final = ("version", "mappings", "tests")
_MAPPING_KEYS: Final = ("name", "record", "topics", "unwrap", "event_type", "account", "payload", "builtin")
_EVENT_TYPE_KEYS: Final = ("path", "cases", "otherwise")
_PLURAL: Final = {"event_type": "event types", "account": "account names"}
_PATH_KEYS: Final = ("path", "lower", "upper", "trim", "to", "divide", "multiply", "default")
_FORMS: Final = {
    "value": ("value",),
    "sum": ("sum", "of", "divide", "multiply"),
    "count": ("count",),
    "each": ("each", "payload"),
    "path": _PATH_KEYS,
}
_TEST_KEYS: Final = ("name", "mapping", "input", "expect")


def parse_file(path: str) -> MappingFile:
    """Read and parse one mapping file. Raises `MappingFileError` (or `ConfigError` if it cannot be read)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"mapping file {path} cannot be read: {exc.strerror or exc}") from exc
    return parse_text(text, path)


def parse_text(text: str, label: str) -> MappingFile:
    """Parse the text of a mapping file named `label` (in messages). Raises `MappingFileError`."""
    parser = _Parser(label)
    result = parser.file(load_yaml(text, label))
    if parser.problems:
        raise MappingFileError(parser.problems)
    return result


class _Parser:
    def __init__(self, label: str) -> None:
        self.label = label
        self.problems: list[Problem] = []
        self.mapping: str | None = None

    def add(self, line: int, where: str | None, message: str) -> None:
        self.problems.append(Problem(self.label, line, self.mapping, where, message))

    def unknown_keys(self, node: LineDict, allowed: Sequence[str], where: str | None) -> None:
        for key in node:
            if key not in allowed:
                message = f"unknown key '{key}'{suggest(str(key), allowed)} (allowed: {', '.join(allowed)})"
                self.add(node.line_of(key), where, message)

    def file(self, data: Any) -> MappingFile:
        if not isinstance(data, LineDict):
            self.add(getattr(data, "line", 1), None, "expected a mapping with 'version: 1' and 'mappings:'")
            return MappingFile(self.label, (), ())
        self.unknown_keys(data, _FILE_KEYS, None)
        if data.get("version") != 1:
            self.add(data.line_of("version"), "version", f"expected 'version: 1', got {data.get('version')!r}")
        mappings = data.get("mappings")
        specs: list[MappingSpec] = []
        if not isinstance(mappings, LineList):
            self.add(data.line_of("mappings"), "mappings", "expected a list of mappings")
        else:
            for index, node in enumerate(mappings):
                spec = self.mapping_spec(node, mappings.line_of(index))
                if spec is not None:
                    specs.append(spec)
        self.mapping = None
        tests = data.get("tests", LineList())
        parsed: list[TestSpec] = []
        if not isinstance(tests, LineList):
            self.add(data.line_of("tests"), "tests", "expected a list of tests")
        else:
            parsed = [t for i, n in enumerate(tests) if (t := self.test_spec(n, tests.line_of(i))) is not None]
        return MappingFile(self.label, tuple(specs), tuple(parsed))

    def text(self, node: LineDict, key: str, where: str | None = None, required: bool = True) -> str | None:
        value = node.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(node.line_of(key), where or key, f"expected a non-empty string, got {value!r}")
            return None
        return value.strip()

    def mapping_spec(self, node: Any, line: int) -> MappingSpec | None:
        self.mapping = None
        if not isinstance(node, LineDict):
            self.add(line, None, f"a mapping must be a YAML mapping (name, record, event_type, payload), got {node!r}")
            return None
        self.mapping = node.get("name") if isinstance(node.get("name"), str) else None
        self.unknown_keys(node, _MAPPING_KEYS, None)
        before = len(self.problems)
        name, record = self.text(node, "name"), self.text(node, "record")
        topics = self.topics(node)
        unwrap = self.choice(node, "unwrap", UNWRAPS)
        builtin = self.choice(node, "builtin", BUILTINS)
        event_type, payload = None, {}
        if builtin is not None:
            for key in ("event_type", "payload", "unwrap"):
                if key in node:
                    self.add(node.line_of(key), key, f"a 'builtin: {builtin}' mapping takes no '{key}'")
        else:
            event_type = self.event_type(node)
            payload = self.payload(node.get("payload"), node.line_of("payload"), "payload")
        account = self.routed(node, "account", "an account name") if "account" in node else None
        if name is None or record is None or len(self.problems) > before:
            return None
        return MappingSpec(name, record, self.label, node.line, topics, unwrap, event_type, payload, builtin, account)

    def topics(self, node: LineDict) -> tuple[str, ...] | None:
        value = node.get("topics")
        if value is None:
            return None
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(t, str) and t.strip() for t in items):
            self.add(node.line_of("topics"), "topics", f"expected a list of topic names, got {value!r}")
            return None
        return tuple(t.strip() for t in items)

    def choice(self, node: LineDict, key: str, allowed: Sequence[str]) -> str | None:
        value = node.get(key)
        if value is not None and value not in allowed:
            message = f"expected {' or '.join(allowed)}, got {value!r}{suggest(str(value), allowed)}"
            self.add(node.line_of(key), key, message)
            return None
        return value if isinstance(value, str) else None

    def event_type(self, node: LineDict) -> EventTypeSpec | None:
        return self.routed(node, "event_type", "an event type")

    def routed(self, node: LineDict, key: str, what: str) -> EventTypeSpec | None:
        """`key` (event_type, account): a constant, or {path, cases, otherwise} choosing by a field's value."""
        value, line = node.get(key), node.line_of(key)
        if isinstance(value, str) and value.strip():
            return EventTypeSpec(line, constant=value.strip())
        if not isinstance(value, LineDict):
            self.add(line, key, f"expected {what}, or {{path, cases, otherwise}}, got {value!r}")
            return None
        self.unknown_keys(value, _EVENT_TYPE_KEYS, key)
        path = self.path(value.get("path"), value.line_of("path"), f"{key}.path")
        cases = value.get("cases")
        if not isinstance(cases, LineDict) or not cases:
            self.add(value.line_of("cases"), f"{key}.cases", f"expected a mapping of values to {_PLURAL[key]}")
            cases = LineDict()
        texts: dict[str, str] = {}
        lines: dict[str, int] = {}
        for case, outcome in cases.items():
            text = _case_text(case)
            if not isinstance(outcome, str) or not outcome.strip():
                self.add(cases.line_of(case), f"{key}.cases.{text}", f"expected {what}, got {outcome!r}")
                continue
            texts[text], lines[text] = outcome.strip(), cases.line_of(case)
        otherwise = value.get("otherwise", DEAD_LETTER)
        if not isinstance(otherwise, str) or not otherwise.strip():
            choices = "skip, dead_letter" if key == "event_type" else "dead_letter"
            self.add(value.line_of("otherwise"), f"{key}.otherwise", f"expected {choices} or {what}")
            otherwise = DEAD_LETTER
        if path is None:
            return None
        return EventTypeSpec(line, path=path, cases=texts, case_lines=lines, otherwise=otherwise.strip())

    def path(self, value: Any, line: int, where: str) -> str | None:
        if not isinstance(value, str) or not _PATH.match(value.strip()):
            self.add(line, where, f"expected a dotted path of field names (like buyer.email), got {value!r}")
            return None
        return value.strip()

    def payload(self, value: Any, line: int, where: str) -> dict[str, Value]:
        if not isinstance(value, LineDict) or not value:
            self.add(line, where, "expected a mapping of RD payload fields to values")
            return {}
        out: dict[str, Value] = {}
        for key, spec in value.items():
            parsed = self.value(spec, value.line_of(key), f"{where}.{key}")
            if parsed is not None:
                out[str(key)] = parsed
        return out

    def value(self, spec: Any, line: int, where: str) -> Value | None:
        if isinstance(spec, str) or (isinstance(spec, LineList) and spec):
            paths = [spec] if isinstance(spec, str) else list(spec)
            checked = [self.path(p, line, where) for p in paths]
            return None if None in checked else PathValue(tuple(p for p in checked if p), line)
        if not isinstance(spec, LineDict):
            hint = f"; a constant is written {{value: {spec!r}}}" if spec is not None else ""
            self.add(line, where, f"expected a path, a list of paths or a mapping, got {spec!r}{hint}")
            return None
        form = next((f for f in _FORMS if f in spec), None)
        if form is None:
            self.add(line, where, f"expected one of the keys {', '.join(_FORMS)}{suggest(next(iter(spec)), _FORMS)}")
            return None
        self.unknown_keys(spec, _FORMS[form], where)
        if form == "value":
            return ConstValue(_plain(spec["value"]), line)
        if form == "count":
            array = self.path(spec["count"], spec.line_of("count"), where)
            return None if array is None else CountValue(array, line)
        if form == "each":
            array = self.path(spec["each"], spec.line_of("each"), where)
            payload = self.payload(spec.get("payload"), spec.line_of("payload"), f"{where}.payload")
            return None if array is None or not payload else EachValue(array, payload, line)
        numbers = {k: self.number(spec, k, where) for k in ("divide", "multiply") if k in spec}
        if form == "sum":
            array = self.path(spec["sum"], spec.line_of("sum"), where)
            of = self.path(spec["of"], spec.line_of("of"), where) if "of" in spec else None
            return None if array is None else SumValue(array, of, line, **numbers)
        return self.path_value(spec, line, where, numbers)

    def path_value(self, spec: LineDict, line: int, where: str, numbers: dict[str, float | None]) -> PathValue | None:
        raw = spec["path"]
        paths = [raw] if isinstance(raw, str) else raw if isinstance(raw, LineList) and raw else [raw]
        checked = [self.path(p, spec.line_of("path"), where) for p in paths]
        flags = {}
        for flag in ("lower", "upper", "trim"):
            if flag in spec and not isinstance(spec[flag], bool):
                self.add(spec.line_of(flag), where, f"'{flag}' must be true or false, got {spec[flag]!r}")
            flags[flag] = spec.get(flag) is True
        if flags["lower"] and flags["upper"]:
            self.add(spec.line_of("upper"), where, "'lower' and 'upper' cannot both be true")
        to = spec.get("to")
        if to is not None and to not in TO_KINDS:
            self.add(spec.line_of("to"), where, f"'to' must be one of {', '.join(TO_KINDS)}, got {to!r}")
        if "default" in spec and spec["default"] is None:
            self.add(spec.line_of("default"), where, "'default: null' means no default: leave it out")
        if None in checked:
            return None
        return PathValue(
            tuple(p for p in checked if p),
            line,
            lower=flags["lower"],
            upper=flags["upper"],
            trim=flags["trim"],
            to=to,
            divide=numbers.get("divide"),
            multiply=numbers.get("multiply"),
            default=_plain(spec.get("default")),
        )

    def number(self, spec: LineDict, key: str, where: str) -> float | None:
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or (key == "divide" and value == 0):
            self.add(spec.line_of(key), where, f"'{key}' must be a non-zero number, got {value!r}")
            return None
        return value

    def test_spec(self, node: Any, line: int) -> TestSpec | None:
        self.mapping = None
        if not isinstance(node, LineDict):
            self.add(line, "tests", f"a test must be a mapping (name, mapping, input, expect), got {node!r}")
            return None
        self.unknown_keys(node, _TEST_KEYS, "test")
        before = len(self.problems)
        name, mapping = self.text(node, "name", "test.name"), self.text(node, "mapping", "test.mapping")
        record = node.get("input")
        if not isinstance(record, LineDict):
            self.add(node.line_of("input"), f"test '{name}': input", "expected the record as a mapping")
        expect = self.expect(node.get("expect"), node.line_of("expect"), f"test '{name}': expect")
        if len(self.problems) > before or name is None or mapping is None or expect is None:
            return None
        assert isinstance(record, dict)
        return TestSpec(name, mapping, _plain(record), expect, self.label, node.line)

    def expect(self, value: Any, line: int, where: str) -> Expect | None:
        if value == SKIP:
            return Expect(skip=True)
        if isinstance(value, LineDict) and set(value) == {DEAD_LETTER} and isinstance(value[DEAD_LETTER], str):
            return Expect(dead_letter=value[DEAD_LETTER])
        if (
            isinstance(value, LineDict)
            and isinstance(value.get("event_type"), str)
            and set(value)
            <= {
                "event_type",
                "payload",
            }
        ):
            payload = value.get("payload", {})
            if isinstance(payload, dict):
                return Expect(event_type=value["event_type"], payload=_plain(payload))
        self.add(line, where, "expected skip, {dead_letter: REASON} or {event_type: T, payload: {...}}")
        return None


def _case_text(key: Any) -> str:
    """A case key as the text it is compared with: YAML `true` is 'true', `7` is '7'."""
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _plain(value: Any) -> Any:
    """`value` without the line-keeping containers (plain dicts and lists; scalars as YAML made them)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
