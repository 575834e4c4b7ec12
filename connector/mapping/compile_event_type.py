"""A mapping's `event_type`, compiled: its names checked against RD's event types, and the generated code that
chooses the builder of each record (a constant, or a path's value looked up in the case table)."""

from __future__ import annotations

from typing import Any, NamedTuple

from connector.errors import MappingError
from connector.mapping.avro_view import AvroType, PathError
from connector.mapping.codegen import Code, Generation, access
from connector.mapping.spec import DEAD_LETTER, SKIP, MappingSpec
from connector.mapping.suggest import suggest
from connector.rd import contract

__all__ = ["Late", "check_event_types", "possible_event_types", "select"]


def possible_event_types(spec: MappingSpec) -> list[str]:
    """The event types a mapping can produce (the known ones among its outcomes)."""
    if spec.event_type is None:
        return []
    return [t for t in spec.event_type.outcomes() if t in contract.EVENT_TYPES]


def check_event_types(gen: Generation) -> list[str]:
    event_type = gen.spec.event_type
    if event_type is None:
        return []
    lines = dict(event_type.case_lines)
    checks = [(event_type.line, "event_type", t) for t in [event_type.constant] if t is not None]
    checks += [(lines[k], f"event_type.cases.{k}", t) for k, t in event_type.cases.items()]
    if event_type.constant is None:
        checks.append((event_type.line, "event_type.otherwise", event_type.otherwise))
    for line, where, name in checks:
        if name in (SKIP, DEAD_LETTER) and where != "event_type":
            continue
        hint = contract.REMOVED_EVENT_TYPES.get(name)
        if hint is not None:
            gen.problem(line, where, f"event type '{name}' was removed from RD's API on 2025-12-31: {hint}")
        elif name not in contract.EVENT_TYPES:
            gen.problem(line, where, f"'{name}' is not an RD event type{suggest(name, contract.EVENT_TYPES)}")
    possible = possible_event_types(gen.spec)
    if not possible and not gen.problems:
        gen.problem(event_type.line, "event_type", "no case gives an event type: every record would be skipped")
    return possible


def select(gen: Generation, code: Code, root: AvroType, builders: dict[str, str]) -> None:
    event_type = gen.spec.event_type
    assert event_type is not None
    if event_type.constant is not None:
        if event_type.constant in builders:
            code.add(2, f"return {builders[event_type.constant]}(r)")
        return
    assert event_type.path is not None
    try:
        kind, steps = gen.view.resolve(root, event_type.path)
    except PathError as exc:
        gen.problem(event_type.line, "event_type.path", str(exc))
        return
    if kind.kind not in ("enum", "string", "int", "boolean"):
        gen.problem(
            event_type.line,
            "event_type.path",
            f"path '{event_type.path}' is {kind.describe()}; an event type is chosen by an enum, string,"
            " integer or boolean",
        )
        return
    _check_cases(gen, kind)
    outcome = {t: builders.get(t, t) for t in event_type.outcomes()}
    cases = {text: _outcome_function(gen, outcome[t]) for text, t in event_type.cases.items()}
    access(code, 2, "t", "r", steps)
    key = {"int": "str(t)", "boolean": "('true' if t else 'false')"}.get(kind.kind, "t")
    code.add(2, f"b = {gen.const(cases)}.get({key}) if t is not None else None", "if b is None:")
    otherwise = outcome[event_type.otherwise]
    if otherwise == SKIP:
        code.add(3, "return _SKIPPED")
    elif otherwise == DEAD_LETTER:
        text = gen.const(f"{event_type.path}=")
        choices = gen.const(f" matches no case ({', '.join(event_type.cases)}) and otherwise is dead_letter")
        logged = gen.const(f"{event_type.path}: its value")
        code.add(3, f"raise _MappingError('no_event_type', {text} + repr(t) + {choices}, {logged} + {choices})")
    else:
        code.add(3, f"b = {otherwise}")
    code.add(2, "return b(r)")


def _outcome_function(gen: Generation, outcome: str) -> Any:
    """A case's builder, by name (resolved when the source runs), or the skip/dead-letter functions."""
    if outcome == SKIP:
        return lambda r: gen.names["_SKIPPED"]
    if outcome == DEAD_LETTER:
        event_type = gen.spec.event_type
        assert event_type is not None
        message = f"{event_type.path}: its case says dead_letter"

        def refuse(r: Any) -> Any:
            raise MappingError("no_event_type", message)

        return refuse
    return Late(outcome)


def _check_cases(gen: Generation, kind: AvroType) -> None:
    event_type = gen.spec.event_type
    assert event_type is not None
    for text in event_type.cases:
        line = event_type.case_lines[text]
        if kind.kind == "enum" and text not in kind.symbols:
            gen.problem(
                line,
                f"event_type.cases.{text}",
                f"'{text}' is not a symbol of {kind.name} ({', '.join(kind.symbols)}){suggest(text, kind.symbols)}",
            )
        elif kind.kind == "int" and not text.lstrip("-").isdigit():
            gen.problem(line, f"event_type.cases.{text}", f"'{event_type.path}' is an integer; '{text}' is not")
        elif kind.kind == "boolean" and text not in ("true", "false"):
            gen.problem(line, f"event_type.cases.{text}", f"'{event_type.path}' is a boolean: use true or false")


class Late(NamedTuple):
    """A case's builder by name, replaced by the builder once the source has run."""

    name: str
