"""A `MappingSpec` + the record schema its records have -> one plain Python function `record -> RdEvent | Skipped`.

The function is generated as straight-line Python source (one builder per possible event type, each reading
only the fields that event type accepts) and compiled once per (mapping, schema): per record it costs what a
hand-written mapper costs. Everything that can be known from the schema and from `contract` is checked here,
before any record: paths exist and their types fit their RD field and modifiers, event types exist and are
not removed ones, every field RD requires of each possible event type is mapped, no field is unknown to RD.
`compile_mapping` returns the function, or the `Problem`s (never both).

At run time the function raises `MappingError` (messages prefixed `mapping <name>: `):
`missing_required_field` (naming the RD field and the paths tried), `invalid_field` (a `to:` that cannot
convert, or a record that does not fit), `no_event_type` (no case matched, `otherwise: dead_letter`) and every
`contract` reason (`check_payload`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from connector.errors import MappingError
from connector.mapping import convert, fit
from connector.mapping.avro_view import AvroType, PathError, RecordView, Step
from connector.mapping.convert import Where
from connector.mapping.event import RdEvent, Skipped, finish
from connector.mapping.fit import Misfit
from connector.mapping.passthrough import map_passthrough
from connector.mapping.spec import (
    DEAD_LETTER,
    SKIP,
    ConstValue,
    CountValue,
    EachValue,
    MappingSpec,
    PathValue,
    Problem,
    SumValue,
    Value,
)
from connector.mapping.suggest import suggest
from connector.rd import contract

__all__ = ["Compiled", "MapFunction", "compile_mapping", "possible_event_types"]

MapFunction = Callable[[Mapping[str, Any]], RdEvent | Skipped]

S, N, INT, B, T = contract.STRING, contract.NUMBER, contract.INTEGER, contract.BOOLEAN, contract.TIMESTAMP
_ITEM_FIELDS: Final = {
    contract.LINE_ITEMS: contract.LINE_ITEM_FIELDS,
    contract.LEGAL_BASES: contract.LEGAL_BASIS_FIELDS,
}
_ITEM_REQUIRED: Final = {
    contract.LINE_ITEMS: contract.LINE_ITEM_REQUIRED,
    contract.LEGAL_BASES: tuple(contract.LEGAL_BASIS_FIELDS),
}


class Compiled(NamedTuple):
    """`function` (None if there are problems), the `problems`, and the generated `source` (for debugging)."""

    function: MapFunction | None
    problems: list[Problem]
    source: str


def possible_event_types(spec: MappingSpec) -> list[str]:
    """The event types a mapping can produce (the known ones among its outcomes)."""
    if spec.event_type is None:
        return []
    return [t for t in spec.event_type.outcomes() if t in contract.EVENT_TYPES]


def compile_mapping(spec: MappingSpec, definition: dict[str, Any]) -> Compiled:
    """Compile `spec` for records of the standalone record schema `definition` (logical types kept)."""
    if spec.builtin == "passthrough":
        return _passthrough(spec, RecordView(definition))
    compiler = _Compiler(spec, RecordView(definition))
    source = compiler.source()
    if compiler.problems:  # each builder meets the same field: each problem once, in the file's order
        problems = sorted(dict.fromkeys(compiler.problems), key=lambda p: p.line)
        return Compiled(None, problems, source)
    namespace = dict(compiler.names)
    # The source is ours: names from the schema and the file only ever appear in it as repr() literals.
    exec(compile(source, f"<mapping {spec.name}>", "exec"), namespace)
    for value in compiler.names.values():  # the case tables name their builders: now they exist
        if isinstance(value, dict):
            value.update({k: namespace[f.name] for k, f in value.items() if isinstance(f, _Late)})
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


@dataclass
class _Code:
    """Lines of generated source at an indentation."""

    lines: list[str] = field(default_factory=list)

    def add(self, indent: int, *lines: str) -> None:
        self.lines.extend("    " * indent + line for line in lines)


class _Compiler:
    def __init__(self, spec: MappingSpec, view: RecordView) -> None:
        self.spec, self.view = spec, view
        self.problems: list[Problem] = []
        self.names: dict[str, Any] = {
            "_MappingError": MappingError,
            "_finish": finish,
            "_SKIPPED": Skipped(spec.name),
            "_ifb": int.from_bytes,
            "_c": convert,
        }
        self._consts: dict[int, str] = {}

    def problem(self, line: int, where: str | None, message: str) -> None:
        self.problems.append(self.spec.problem(line, where, message))

    def const(self, value: Any) -> str:
        name = f"_k{len(self.names)}"
        self.names[name] = value
        return name

    # -- the whole function ----------------------------------------------------------------------------

    def source(self) -> str:
        spec = self.spec
        root = self.root()
        possible = self.check_event_types()
        self.check_fields(possible)
        code = _Code()
        builders = {t: f"_b{i}" for i, t in enumerate(possible)}
        if root is not None:
            for event_type, name in builders.items():
                self.builder(code, name, event_type, root)
        code.add(0, "def _map(r):", "    try:")
        if spec.unwrap == "debezium":
            code.add(2, "if r['op'] == 'd': return _SKIPPED", "r = r['after']", "if r is None: return _SKIPPED")
        if root is not None and spec.event_type is not None:
            self.select(code, root, builders)
        prefix = self.const(f"mapping {spec.name}: ")
        misfit = self.const(f"mapping {spec.name}: record does not fit its mapping: ")
        code.add(1, "except _MappingError as exc:")
        code.add(2, f"raise exc.prefixed({prefix}) from None")
        code.add(1, "except (KeyError, TypeError, ValueError, AttributeError) as exc:")  # the log: only the class
        code.add(
            2, f"raise _MappingError('invalid_field', {misfit} + repr(exc), {misfit} + type(exc).__name__) from exc"
        )
        return "\n".join(code.lines) + "\n"

    def root(self) -> AvroType | None:
        """The record the paths start from (the envelope's `after` for `unwrap: debezium`)."""
        spec, view = self.spec, self.view
        if spec.unwrap != "debezium":
            return view.root
        fields = view.fields(view.root)
        after = view.type_of(fields["after"]) if "after" in fields else None
        op = view.type_of(fields["op"]) if "op" in fields else None
        if after is None or after.kind != "record" or op is None or op.kind != "string":
            self.problem(
                spec.line,
                "unwrap",
                f"'unwrap: debezium' needs a Debezium envelope (a record field 'after' and a string field 'op');"
                f" {view.full_name} has fields {', '.join(fields)}",
            )
            return None
        return after

    def check_event_types(self) -> list[str]:
        event_type = self.spec.event_type
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
                self.problem(line, where, f"event type '{name}' was removed from RD's API on 2025-12-31: {hint}")
            elif name not in contract.EVENT_TYPES:
                self.problem(line, where, f"'{name}' is not an RD event type{suggest(name, contract.EVENT_TYPES)}")
        possible = possible_event_types(self.spec)
        if not possible and not self.problems:
            self.problem(event_type.line, "event_type", "no case gives an event type: every record would be skipped")
        return possible

    def check_fields(self, possible: list[str]) -> None:
        """No field unknown to every possible event type; every required field of each one mapped."""
        spec = self.spec
        if not possible:
            return
        accepted = {f for t in possible for f in contract.EVENT_FIELDS[t]}
        for name, value in spec.payload.items():
            if not any(contract.accepts(t, name) for t in possible):
                types = ", ".join(possible)
                self.problem(
                    value.line, f"payload.{name}", f"RD accepts no field '{name}' in {types}{suggest(name, accepted)}"
                )
        for event_type in possible:
            for name in contract.EVENT_TYPES[event_type]:
                if name not in spec.payload:
                    self.problem(spec.line, "payload", f"{event_type} requires '{name}': add it to payload")

    # -- event type selection --------------------------------------------------------------------------

    def select(self, code: _Code, root: AvroType, builders: dict[str, str]) -> None:
        event_type = self.spec.event_type
        assert event_type is not None
        if event_type.constant is not None:
            if event_type.constant in builders:
                code.add(2, f"return {builders[event_type.constant]}(r)")
            return
        assert event_type.path is not None
        try:
            kind, steps = self.view.resolve(root, event_type.path)
        except PathError as exc:
            self.problem(event_type.line, "event_type.path", str(exc))
            return
        if kind.kind not in ("enum", "string", "int", "boolean"):
            self.problem(
                event_type.line,
                "event_type.path",
                f"path '{event_type.path}' is {kind.describe()}; an event type is chosen by an enum, string,"
                " integer or boolean",
            )
            return
        self.check_cases(kind)
        outcome = {t: builders.get(t, t) for t in event_type.outcomes()}
        cases = {text: self.outcome_function(outcome[t]) for text, t in event_type.cases.items()}
        self.access(code, 2, "t", "r", steps)
        key = {"int": "str(t)", "boolean": "('true' if t else 'false')"}.get(kind.kind, "t")
        code.add(2, f"b = {self.const(cases)}.get({key}) if t is not None else None", "if b is None:")
        otherwise = outcome[event_type.otherwise]
        if otherwise == SKIP:
            code.add(3, "return _SKIPPED")
        elif otherwise == DEAD_LETTER:
            text = self.const(f"{event_type.path}=")
            choices = self.const(f" matches no case ({', '.join(event_type.cases)}) and otherwise is dead_letter")
            logged = self.const(f"{event_type.path}: its value")
            code.add(3, f"raise _MappingError('no_event_type', {text} + repr(t) + {choices}, {logged} + {choices})")
        else:
            code.add(3, f"b = {otherwise}")
        code.add(2, "return b(r)")

    def outcome_function(self, outcome: str) -> Any:
        """A case's builder, by name (resolved when the source runs), or the skip/dead-letter functions."""
        if outcome == SKIP:
            return lambda r: self.names["_SKIPPED"]
        if outcome == DEAD_LETTER:
            event_type = self.spec.event_type
            assert event_type is not None
            message = f"{event_type.path}: its case says dead_letter"

            def refuse(r: Any) -> Any:
                raise MappingError("no_event_type", message)

            return refuse
        return _Late(outcome)

    def check_cases(self, kind: AvroType) -> None:
        event_type = self.spec.event_type
        assert event_type is not None
        for text in event_type.cases:
            line = event_type.case_lines[text]
            if kind.kind == "enum" and text not in kind.symbols:
                self.problem(
                    line,
                    f"event_type.cases.{text}",
                    f"'{text}' is not a symbol of {kind.name} ({', '.join(kind.symbols)}){suggest(text, kind.symbols)}",
                )
            elif kind.kind == "int" and not text.lstrip("-").isdigit():
                self.problem(line, f"event_type.cases.{text}", f"'{event_type.path}' is an integer; '{text}' is not")
            elif kind.kind == "boolean" and text not in ("true", "false"):
                self.problem(line, f"event_type.cases.{text}", f"'{event_type.path}' is a boolean: use true or false")

    # -- one event type's payload ----------------------------------------------------------------------

    def builder(self, code: _Code, name: str, event_type: str, root: AvroType) -> None:
        code.add(0, f"def {name}(r):", "    p = {}")
        required = set(contract.EVENT_TYPES[event_type])
        for key, value in self.spec.payload.items():
            kind = contract.accepts(event_type, key)
            if kind is None:
                continue  # sent only with the event types that accept it
            self.value(code, 1, value, kind, ("r", root, ""), ("p", key, f"payload.{key}"), event_type, key in required)
        code.add(1, f"return _finish({event_type!r}, p)")

    def value(
        self,
        code: _Code,
        ind: int,
        value: Value,
        kind: str,
        base: tuple[str, AvroType, str],
        target: tuple[str, str, str],
        event_type: str,
        required: bool,
        index: str | None = None,
    ) -> None:
        """Code that sets `target[0][target[1]]` from `value`, read from the record variable `base[0]` (of type
        `base[1]`; `base[2]` prefixes paths in messages). `target[2]` names the field in problems."""
        where = target[2]
        try:
            if isinstance(value, ConstValue):
                self.constant(code, ind, value.value, kind, target, event_type)
            elif isinstance(value, PathValue):
                self.path_value(code, ind, value, kind, base, target, event_type, required, index)
            elif isinstance(value, SumValue | CountValue):
                self.aggregate(code, ind, value, kind, base, target)
            else:
                self.each(code, ind, value, kind, base, target, event_type)
        except Misfit as exc:
            self.problem(value.line, where, str(exc))
        except PathError as exc:
            self.problem(value.line, where, str(exc))

    def constant(
        self, code: _Code, ind: int, value: Any, kind: str, target: tuple[str, str, str], event_type: str
    ) -> None:
        fitted = fit.fit_constant(value, kind, target[1])
        out, key = target[0], target[1]
        if isinstance(fitted, list) and fitted and isinstance(fitted[0], dict):
            code.add(ind, f"{out}[{key!r}] = [dict(x) for x in {self.const(fitted)}]")  # trims mutate: a copy
        elif isinstance(fitted, list):
            code.add(ind, f"{out}[{key!r}] = list({self.const(fitted)})")
        else:
            code.add(ind, f"{out}[{key!r}] = {self.const(fitted)}")
        if out == "p":  # RD's own checks of the constant, now rather than on every record
            errors = contract.payload_errors(event_type, {key: fitted})
            found = [e for path, es in errors.items() if path.split("[")[0].split(".")[0] == key for e in es]
            if found:
                raise Misfit(f"{fitted!r:.80}: {found[0]['error_message']}")

    def path_value(
        self,
        code: _Code,
        ind: int,
        value: PathValue,
        kind: str,
        base: tuple[str, AvroType, str],
        target: tuple[str, str, str],
        event_type: str,
        required: bool,
        index: str | None,
    ) -> None:
        var, start, prefix = base
        resolved = [self.view.resolve(start, path, prefix) for path in value.paths]
        types = {fit.type_key(t) for t, _ in resolved}
        if len(types) > 1:
            shown = ", ".join(
                f"'{prefix}{p}' is {t.describe()}" for p, (t, _) in zip(value.paths, resolved, strict=True)
            )
            raise Misfit(f"the paths of a list must have one type: {shown}")
        source = resolved[0][0]
        paths = tuple(prefix + p for p in value.paths)
        where = self.const(Where(target[2].removeprefix("payload."), paths))
        element = self.view.items(source) if source.kind in ("array", "map") else None
        lines, _ = fit.conversion(source, element, value, kind, target[1], paths[0], where)
        empty_is_absent = source.kind == "array"
        steps = resolved[0][1]
        if len(resolved) == 1 and not source.nullable and not empty_is_absent:
            # Never null in a decoded record: no test needed (a hand-made dict with a None fails in contract or in
            # the conversion, as a refusal). Most fields of most schemas are this case.
            if not lines:
                expr = var + "".join(f"[{step.field!r}]" for step in steps)
                code.add(ind, f"{target[0]}[{target[1]!r}] = {expr}")
                return
            self.access(code, ind, "v", var, steps)
            code.add(ind, *lines, f"{target[0]}[{target[1]!r}] = v")
            return
        self.access(code, ind, "v", var, steps)
        for _, steps in resolved[1:]:
            code.add(ind, "if not v:" if empty_is_absent else "if v is None:")
            self.access(code, ind + 1, "v", var, steps)
        code.add(ind, "if v:" if empty_is_absent else "if v is not None:")
        code.add(ind + 1, *lines, f"{target[0]}[{target[1]!r}] = v")
        if value.default is not None:
            default = fit.fit_constant(value.default, kind, target[1])
            code.add(ind, "else:", f"    {target[0]}[{target[1]!r}] = {self.const(default)}")
        elif required:
            at = "" if index is None else f", {index}"
            code.add(ind, "else:", f"    raise _c.missing({where}, {event_type!r}{at})")

    def access(self, code: _Code, ind: int, var: str, base: str, steps: list[Step]) -> None:
        """`var = base[a][b]...`, each hop after a nullable one guarded by `if var is not None`."""
        expr, guarded = base, False
        for number, step in enumerate(steps):
            expr = f"{expr}[{step.field!r}]"
            if step.nullable or number == len(steps) - 1:
                code.add(ind, f"{'if ' + var + ' is not None: ' if guarded else ''}{var} = {expr}")
                expr, guarded = var, guarded or step.nullable

    def aggregate(
        self,
        code: _Code,
        ind: int,
        value: SumValue | CountValue,
        kind: str,
        base: tuple[str, AvroType, str],
        target: tuple[str, str, str],
    ) -> None:
        var, start, prefix = base
        array, steps = self.view.resolve(start, value.array, prefix)
        what = "sum" if isinstance(value, SumValue) else "count"
        if array.kind not in ("array", "map") or (what == "sum" and array.kind != "array"):
            raise Misfit(f"'{what}: {prefix}{value.array}' needs an array; it is {array.describe()}")
        out = f"{target[0]}[{target[1]!r}]"
        self.access(code, ind, "a", var, steps)
        if isinstance(value, CountValue):
            if kind not in (N, INT):
                raise Misfit(f"a count is an integer; RD's '{target[1]}' is {fit.kind_words(kind)}")
            code.add(ind, "if a is not None:", f"    {out} = len(a)")
            return
        element = self.view.items(array)
        item_steps: list[Step] = []
        if value.of is not None:
            if element.kind != "record":
                raise Misfit(
                    f"'of: {value.of}' needs an array of records; {prefix}{value.array} holds {element.describe()}"
                )
            element, item_steps = self.view.resolve(element, value.of, f"{prefix}{value.array}[].")
        number = fit.number_expr(element, "x")
        if number is None:
            at = f"{prefix}{value.array}[]" + (f".{value.of}" if value.of else "")
            raise Misfit(f"a sum needs numbers; '{at}' is {element.describe()}")
        total_kind = "int" if element.kind == "int" or (element.kind == "decimal" and element.scale == 0) else "float"
        steps_of = fit.scale_steps(value, total_kind)
        total_kind = steps_of[1]
        if kind == INT and total_kind != "int":
            raise Misfit(f"this sum is not a whole number; RD's '{target[1]}' is an integer")
        if kind not in (N, INT):
            raise Misfit(f"a sum is a number; RD's '{target[1]}' is {fit.kind_words(kind)}")
        code.add(ind, "if a is not None:")
        if not item_steps or (not any(s.nullable for s in item_steps) and number == "x"):
            picked = "e" + "".join(f"[{s.field!r}]" for s in item_steps)
            code.add(ind + 1, f"s = sum([{picked} for e in a])")
        else:
            code.add(ind + 1, "s = 0", "for e in a:")
            self.access(code, ind + 2, "x", "e", item_steps)
            code.add(ind + 2, f"if x is not None: s += {number}")
        code.add(ind + 1, *steps_of[0], f"{out} = s")

    def each(
        self,
        code: _Code,
        ind: int,
        value: EachValue,
        kind: str,
        base: tuple[str, AvroType, str],
        target: tuple[str, str, str],
        event_type: str,
    ) -> None:
        var, start, prefix = base
        if kind not in _ITEM_FIELDS:
            raise Misfit(f"'each' makes a list of objects; RD's '{target[1]}' is {fit.kind_words(kind)}")
        array, steps = self.view.resolve(start, value.array, prefix)
        if array.kind != "array" or self.view.items(array).kind != "record":
            raise Misfit(f"'each: {prefix}{value.array}' needs an array of records; it is {array.describe()}")
        element = self.view.items(array)
        fields, required = _ITEM_FIELDS[kind], _ITEM_REQUIRED[kind]
        for name, spec in value.payload.items():
            if name not in fields:
                self.problem(
                    spec.line, f"{target[2]}[].{name}", f"RD's {kind} have no field '{name}'{suggest(name, fields)}"
                )
        for name in required:
            if name not in value.payload:
                self.problem(value.line, target[2], f"RD requires '{name}' of each of its {kind}: add it to payload")
        depth = ind + 1
        self.access(code, ind, "a", var, steps)
        code.add(ind, "if a:", "    items = []", "    for e in a:", "        q = {}")
        for name, spec in value.payload.items():
            if name in fields:
                item_base = ("e", element, f"{prefix}{value.array}[].")
                item_target = ("q", name, f"{target[2]}[].{name}")
                self.value(
                    code,
                    depth + 1,
                    spec,
                    fields[name],
                    item_base,
                    item_target,
                    event_type,
                    name in required,
                    "len(items)",
                )
        code.add(depth + 1, "items.append(q)")
        code.add(depth, f"{target[0]}[{target[1]!r}] = items")


class _Late(NamedTuple):
    """A case's builder by name, replaced by the builder once the source has run."""

    name: str
