"""A `MappingSpec` + the record schema its records have -> one plain Python function `record -> RdEvent | Skipped`.

The function is generated as straight-line Python source (one builder per possible event type, each reading
only the fields that event type accepts) and compiled once per (mapping, schema): per record it costs what a
hand-written mapper costs. Everything that can be known from the schema and from `contract` is checked here,
before any record: paths exist and their types fit their RD field and modifiers, event types exist and are
not removed ones, every field RD requires of each possible event type is mapped, no field is unknown to RD.
`compile_mapping` returns the function, or the `Problem`s (never both). The event type's part is written by
`compile_event_type`, the payload's by `compile_payload`, both into one `codegen.Generation`.

At run time the function raises `MappingError` (messages prefixed `mapping <name>: `):
`missing_required_field` (naming the RD field and the paths tried), `invalid_field` (a `to:` that cannot
convert, or a record that does not fit), `no_event_type` (no case matched, `otherwise: dead_letter`),
`unknown_account` (the same, of `account`) and every `contract` reason (`check_payload`). The account
`compile_account` gives is stamped on each event (`RdEvent.account`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from connector.errors import MappingError
from connector.mapping.avro_view import AvroType, RecordView
from connector.mapping.codegen import Code, Generation
from connector.mapping.compile_account import AccountOf, compile_account
from connector.mapping.compile_event_type import Late, check_event_types, possible_event_types, select
from connector.mapping.compile_payload import PayloadCompiler, check_fields
from connector.mapping.event import RdEvent, Skipped, finish
from connector.mapping.passthrough import map_passthrough
from connector.mapping.spec import MappingSpec, Problem

__all__ = ["Compiled", "MapFunction", "compile_mapping", "possible_event_types"]

MapFunction = Callable[[Mapping[str, Any]], RdEvent | Skipped]


class Compiled(NamedTuple):
    """`function` (None if there are problems), the `problems`, and the generated `source` (for debugging)."""

    function: MapFunction | None
    problems: list[Problem]
    source: str


def compile_mapping(spec: MappingSpec, definition: dict[str, Any]) -> Compiled:
    """Compile `spec` for records of the standalone record schema `definition` (logical types kept)."""
    compiled = _compile_event(spec, definition)
    view = RecordView(definition)
    account, problems = compile_account(spec, view, view.root if spec.unwrap != "debezium" else _after(view))
    if problems or compiled.function is None or account is None:
        problems = sorted(dict.fromkeys([*compiled.problems, *problems]), key=lambda p: p.line)
        return Compiled(None if problems else compiled.function, problems, compiled.source)
    if isinstance(account, str):
        return Compiled(_stamped(compiled.function, account), [], compiled.source)
    return Compiled(_routed(spec.name, compiled.function, account), [], compiled.source)


def _stamped(function: MapFunction, account: str) -> MapFunction:
    """`function`, its events stamped with the constant `account` (the record is not read again)."""
    new = RdEvent.__new__

    def mapped(record: Mapping[str, Any]) -> RdEvent | Skipped:
        event = function(record)
        if type(event) is not RdEvent:
            return event
        return new(RdEvent, event[0], event[1], event[2], account)

    return mapped


def _routed(mapping: str, function: MapFunction, account_of: AccountOf) -> MapFunction:
    """`function`, its events stamped with the account `account_of` gives (a skipped record needs none)."""
    new = RdEvent.__new__
    misfit = f"mapping {mapping}: record does not fit its mapping's account: "

    def mapped(record: Mapping[str, Any]) -> RdEvent | Skipped:
        event = function(record)
        if type(event) is not RdEvent:
            return event
        try:
            account = account_of(record)
        except (KeyError, TypeError, AttributeError) as exc:
            raise MappingError("invalid_field", misfit + repr(exc), misfit + type(exc).__name__) from exc
        return new(RdEvent, event[0], event[1], event[2], account)

    return mapped


def _after(view: RecordView) -> AvroType | None:
    """The Debezium envelope's `after` record (None if it has none: `_root` reports that)."""
    after = view.fields(view.root).get("after")
    kind = view.type_of(after) if after is not None else None
    return kind if kind is not None and kind.kind == "record" else None


def _compile_event(spec: MappingSpec, definition: dict[str, Any]) -> Compiled:
    if spec.builtin == "passthrough":
        return _passthrough(spec, RecordView(definition))
    gen = Generation(spec, RecordView(definition))
    source = _source(gen)
    if gen.problems:  # each builder meets the same field: each problem once, in the file's order
        problems = sorted(dict.fromkeys(gen.problems), key=lambda p: p.line)
        return Compiled(None, problems, source)
    namespace = dict(gen.names)
    # The source is ours: names from the schema and the file only ever appear in it as repr() literals.
    exec(compile(source, f"<mapping {spec.name}>", "exec"), namespace)
    for value in gen.names.values():  # the case tables name their builders: now they exist
        if isinstance(value, dict):
            value.update({k: namespace[f.name] for k, f in value.items() if isinstance(f, Late)})
    return Compiled(namespace["_map"], [], source)


def _passthrough(spec: MappingSpec, view: RecordView) -> Compiled:
    fields = view.fields(view.root)
    problems = [
        spec.problem(spec.line, "builtin", f"'builtin: passthrough' needs a string field '{name}' in {view.full_name}")
        for name in ("event_type", "payload_json")
        if name not in fields or view.type_of(fields[name]).kind != "string"
    ]
    if problems:
        return Compiled(None, problems, "")
    prefix = f"mapping {spec.name}: "

    def mapped(record: Mapping[str, Any]) -> RdEvent:
        try:
            return finish(*map_passthrough(record))
        except MappingError as exc:
            raise exc.prefixed(prefix) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            misfit = f"{prefix}record does not fit its mapping: "
            raise MappingError("invalid_field", f"{misfit}{exc!r}", misfit + type(exc).__name__) from exc

    return Compiled(mapped, [], "")


def _source(gen: Generation) -> str:
    spec = gen.spec
    root = _root(gen)
    possible = check_event_types(gen)
    check_fields(gen, possible)
    code = Code()
    builders = {t: f"_b{i}" for i, t in enumerate(possible)}
    if root is not None:
        payload = PayloadCompiler(gen)
        for event_type, name in builders.items():
            payload.builder(code, name, event_type, root)
    code.add(0, "def _map(r):", "    try:")
    if spec.unwrap == "debezium":
        code.add(2, "if r['op'] == 'd': return _SKIPPED", "r = r['after']", "if r is None: return _SKIPPED")
    if root is not None and spec.event_type is not None:
        select(gen, code, root, builders)
    prefix = gen.const(f"mapping {spec.name}: ")
    misfit = gen.const(f"mapping {spec.name}: record does not fit its mapping: ")
    code.add(1, "except _MappingError as exc:")
    code.add(2, f"raise exc.prefixed({prefix}) from None")
    code.add(1, "except (KeyError, TypeError, ValueError, AttributeError) as exc:")  # the log: only the class
    code.add(2, f"raise _MappingError('invalid_field', {misfit} + repr(exc), {misfit} + type(exc).__name__) from exc")
    return "\n".join(code.lines) + "\n"


def _root(gen: Generation) -> AvroType | None:
    """The record the paths start from (the envelope's `after` for `unwrap: debezium`)."""
    spec, view = gen.spec, gen.view
    if spec.unwrap != "debezium":
        return view.root
    fields = view.fields(view.root)
    after = view.type_of(fields["after"]) if "after" in fields else None
    op = view.type_of(fields["op"]) if "op" in fields else None
    if after is None or after.kind != "record" or op is None or op.kind != "string":
        gen.problem(
            spec.line,
            "unwrap",
            f"'unwrap: debezium' needs a Debezium envelope (a record field 'after' and a string field 'op');"
            f" {view.full_name} has fields {', '.join(fields)}",
        )
        return None
    return after
