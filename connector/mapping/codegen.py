"""What the generated source of one mapping is written with: its lines, the names it refers to (helpers and
constants, never inlined), the problems found while writing it, and guarded reads of a path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.errors import MappingError
from connector.mapping import convert
from connector.mapping.avro_view import RecordView, Step
from connector.mapping.event import Skipped, finish
from connector.mapping.spec import MappingSpec, Problem
from connector.rd import contract

__all__ = ["Code", "Generation", "access"]


@dataclass
class Code:
    """Lines of generated source at an indentation."""

    lines: list[str] = field(default_factory=list)

    def add(self, indent: int, *lines: str) -> None:
        self.lines.extend("    " * indent + line for line in lines)


class Generation:
    """One compilation of `spec` for records of `view`: the namespace its source runs in, and its problems."""

    def __init__(self, spec: MappingSpec, view: RecordView) -> None:
        self.spec, self.view = spec, view
        self.problems: list[Problem] = []
        self.names: dict[str, Any] = {
            "_MappingError": MappingError,
            "_finish": finish,
            "_SKIPPED": Skipped(spec.name),
            "_ifb": int.from_bytes,
            "_c": convert,
            **contract.CONDITION_NAMES,
        }

    def problem(self, line: int, where: str | None, message: str) -> None:
        self.problems.append(self.spec.problem(line, where, message))

    def const(self, value: Any) -> str:
        name = f"_k{len(self.names)}"
        self.names[name] = value
        return name


def access(code: Code, ind: int, var: str, base: str, steps: list[Step]) -> None:
    """`var = base[a][b]...`, each hop after a nullable one guarded by `if var is not None`."""
    expr, guarded = base, False
    for number, step in enumerate(steps):
        expr = f"{expr}[{step.field!r}]"
        if step.nullable or number == len(steps) - 1:
            code.add(ind, f"{'if ' + var + ' is not None: ' if guarded else ''}{var} = {expr}")
            expr, guarded = var, guarded or step.nullable
