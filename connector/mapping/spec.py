"""The mapping-file syntax (version 1) as data: `MappingFile` of `MappingSpec`s and `TestSpec`s, and the
`Problem`s a check finds. `connector.mapping.spec_parser` makes them from YAML text; the reference is
docs/mappings.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from connector.errors import ConfigError

__all__ = [
    "DEAD_LETTER",
    "SKIP",
    "TO_KINDS",
    "ConstValue",
    "CountValue",
    "EachValue",
    "EventTypeSpec",
    "Expect",
    "MappingFile",
    "MappingFileError",
    "MappingSpec",
    "PathValue",
    "Problem",
    "SumValue",
    "TestSpec",
    "Value",
]

SKIP: Final = "skip"
DEAD_LETTER: Final = "dead_letter"
TO_KINDS: Final = ("string", "integer", "number", "boolean", "timestamp")
UNWRAPS: Final = ("debezium",)
BUILTINS: Final = ("passthrough",)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a mapping file, as a person reads it: `file:line: mapping 'm': field: message`."""

    file: str
    line: int
    mapping: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.mapping:
            parts.append(f"mapping '{self.mapping}'")
        if self.field:
            parts.append(self.field)
        return ": ".join(parts) + ": " + self.message


class MappingFileError(ConfigError):
    """A mapping file (or the set of them) is broken; `problems` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(f"{count} problem(s) in the mapping files:\n" + "\n".join(f"  {p}" for p in self.problems))


@dataclass(frozen=True, slots=True)
class PathValue:
    """A value read from the record: the first present of `paths`, converted and modified."""

    paths: tuple[str, ...]
    line: int
    lower: bool = False
    upper: bool = False
    trim: bool = False
    to: str | None = None
    divide: float | None = None
    multiply: float | None = None
    default: Any = None


@dataclass(frozen=True, slots=True)
class ConstValue:
    value: Any
    line: int


@dataclass(frozen=True, slots=True)
class SumValue:
    """The sum over the elements of the array at `array` of the value at the relative path `of` (or the
    elements themselves when `of` is None)."""

    array: str
    of: str | None
    line: int
    divide: float | None = None
    multiply: float | None = None


@dataclass(frozen=True, slots=True)
class CountValue:
    array: str
    line: int


@dataclass(frozen=True, slots=True)
class EachValue:
    """One object per element of the array at `array`; `payload` paths are relative to the element."""

    array: str
    payload: dict[str, Value]
    line: int


Value = PathValue | ConstValue | SumValue | CountValue | EachValue


@dataclass(frozen=True, slots=True)
class EventTypeSpec:
    """A constant event type, or one chosen by the text of the value at `path`: `cases[text]`, else
    `otherwise`. Outcomes are event types, `SKIP` or `DEAD_LETTER`. A mapping's `account` has the same
    form (outcomes: account names or `DEAD_LETTER`)."""

    line: int
    constant: str | None = None
    path: str | None = None
    cases: dict[str, str] = field(default_factory=dict)
    case_lines: dict[str, int] = field(default_factory=dict)
    otherwise: str = DEAD_LETTER

    def outcomes(self) -> list[str]:
        if self.constant is not None:
            return [self.constant]
        return list(dict.fromkeys([*self.cases.values(), self.otherwise]))


@dataclass(frozen=True, slots=True)
class MappingSpec:
    name: str
    record: str
    file: str
    line: int
    topics: tuple[str, ...] | None = None
    unwrap: str | None = None
    event_type: EventTypeSpec | None = None
    payload: dict[str, Value] = field(default_factory=dict)
    builtin: str | None = None
    account: EventTypeSpec | None = None  # the RD account its events go to (None: the only, or `default`)

    def problem(self, line: int, where: str | None, message: str) -> Problem:
        return Problem(self.file, line, self.name, where, message)


@dataclass(frozen=True, slots=True)
class Expect:
    """What a test expects: `skip`, a dead letter with `dead_letter` as reason, or this event."""

    skip: bool = False
    dead_letter: str | None = None
    event_type: str | None = None
    payload: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TestSpec:
    name: str
    mapping: str
    input: dict[str, Any]
    expect: Expect
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class MappingFile:
    file: str
    mappings: tuple[MappingSpec, ...]
    tests: tuple[TestSpec, ...]
