"""A mapping's `payload`, compiled: one builder per possible event type, each reading only the fields that
event type accepts, every path resolved and its type fitted to its RD field (`fit`) before any record; and
the check that no field is unknown to RD and every field RD requires is mapped."""

from __future__ import annotations

from typing import Any, Final

from connector.mapping import fit
from connector.mapping.avro_view import AvroType, PathError, Step
from connector.mapping.codegen import Code, Generation, access
from connector.mapping.compile_check import write_check
from connector.mapping.convert import Where
from connector.mapping.fit import Misfit
from connector.mapping.spec import ConstValue, CountValue, EachValue, PathValue, SumValue, Value
from connector.mapping.suggest import suggest
from connector.rd import contract

__all__ = ["PayloadCompiler", "check_fields"]

N, INT = contract.NUMBER, contract.INTEGER
_ITEM_FIELDS: Final = {
    contract.LINE_ITEMS: contract.LINE_ITEM_FIELDS,
    contract.LEGAL_BASES: contract.LEGAL_BASIS_FIELDS,
}
_ITEM_REQUIRED: Final = {
    contract.LINE_ITEMS: contract.LINE_ITEM_REQUIRED,
    contract.LEGAL_BASES: tuple(contract.LEGAL_BASIS_FIELDS),
}


def check_fields(gen: Generation, possible: list[str]) -> None:
    """No field unknown to every possible event type; every required field of each one mapped."""
    spec = gen.spec
    if not possible:
        return
    accepted = {f for t in possible for f in contract.EVENT_FIELDS[t]}
    for name, value in spec.payload.items():
        if not any(contract.accepts(t, name) for t in possible):
            types = ", ".join(possible)
            gen.problem(
                value.line, f"payload.{name}", f"RD accepts no field '{name}' in {types}{suggest(name, accepted)}"
            )
    for event_type in possible:
        for name in contract.EVENT_TYPES[event_type]:
            if name not in spec.payload:
                gen.problem(spec.line, "payload", f"{event_type} requires '{name}': add it to payload")


class PayloadCompiler:
    """Writes each event type's builder into the generated source of `gen`."""

    def __init__(self, gen: Generation) -> None:
        self.gen, self.view = gen, gen.view

    def builder(self, code: Code, name: str, event_type: str, root: AvroType) -> None:
        """`def name(r)`: the payload of `event_type`, finished with its own check (`compile_check`)."""
        body = Code()
        body.add(0, f"def {name}(r):", "    p = {}")
        required = set(contract.EVENT_TYPES[event_type])
        fields: dict[str, tuple[str, ...] | None] = {}
        for key, value in self.gen.spec.payload.items():
            kind = contract.accepts(event_type, key)
            if kind is None:
                continue  # sent only with the event types that accept it
            fields[key] = _object_keys(value)
            self.value(body, 1, value, kind, ("r", root, ""), ("p", key, f"payload.{key}"), event_type, key in required)
        write_check(code, f"{name}_ok", event_type, fields)
        code.lines += body.lines
        code.add(1, f"return _finish({event_type!r}, p, {name}_ok)")

    def value(
        self,
        code: Code,
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
            self.gen.problem(value.line, where, str(exc))
        except PathError as exc:
            self.gen.problem(value.line, where, str(exc))

    def constant(
        self, code: Code, ind: int, value: Any, kind: str, target: tuple[str, str, str], event_type: str
    ) -> None:
        fitted = fit.fit_constant(value, kind, target[1])
        out, key = target[0], target[1]
        if isinstance(fitted, list) and fitted and isinstance(fitted[0], dict):
            code.add(ind, f"{out}[{key!r}] = [dict(x) for x in {self.gen.const(fitted)}]")  # trims mutate: a copy
        elif isinstance(fitted, list):
            code.add(ind, f"{out}[{key!r}] = list({self.gen.const(fitted)})")
        else:
            code.add(ind, f"{out}[{key!r}] = {self.gen.const(fitted)}")
        if out == "p":  # RD's own checks of the constant, now rather than on every record
            errors = contract.payload_errors(event_type, {key: fitted})
            found = [e for path, es in errors.items() if path.split("[")[0].split(".")[0] == key for e in es]
            if found:
                raise Misfit(f"{fitted!r:.80}: {found[0]['error_message']}")

    def path_value(
        self,
        code: Code,
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
        where = self.gen.const(Where(target[2].removeprefix("payload."), paths))
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
            access(code, ind, "v", var, steps)
            code.add(ind, *lines, f"{target[0]}[{target[1]!r}] = v")
            return
        access(code, ind, "v", var, steps)
        for _, steps in resolved[1:]:
            code.add(ind, "if not v:" if empty_is_absent else "if v is None:")
            access(code, ind + 1, "v", var, steps)
        code.add(ind, "if v:" if empty_is_absent else "if v is not None:")
        code.add(ind + 1, *lines, f"{target[0]}[{target[1]!r}] = v")
        if value.default is not None:
            default = fit.fit_constant(value.default, kind, target[1])
            code.add(ind, "else:", f"    {target[0]}[{target[1]!r}] = {self.gen.const(default)}")
        elif required:
            at = "" if index is None else f", {index}"
            code.add(ind, "else:", f"    raise _c.missing({where}, {event_type!r}{at})")

    def aggregate(
        self,
        code: Code,
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
        access(code, ind, "a", var, steps)
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
            access(code, ind + 2, "x", "e", item_steps)
            code.add(ind + 2, f"if x is not None: s += {number}")
        code.add(ind + 1, *steps_of[0], f"{out} = s")

    def each(
        self,
        code: Code,
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
                self.gen.problem(
                    spec.line, f"{target[2]}[].{name}", f"RD's {kind} have no field '{name}'{suggest(name, fields)}"
                )
        for name in required:
            if name not in value.payload:
                self.gen.problem(
                    value.line, target[2], f"RD requires '{name}' of each of its {kind}: add it to payload"
                )
        depth = ind + 1
        access(code, ind, "a", var, steps)
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


def _object_keys(value: Value) -> tuple[str, ...] | None:
    """The keys of the objects a list value (line items, legal bases) can hold; None: not a list of objects."""
    if isinstance(value, EachValue):
        return tuple(value.payload)
    if isinstance(value, ConstValue) and isinstance(value.value, list):
        return tuple(dict.fromkeys(k for x in value.value if isinstance(x, dict) for k in x))
    return None
