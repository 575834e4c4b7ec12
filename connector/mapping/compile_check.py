"""RD's checks of the payload one compiled builder makes, written for that builder: only the fields it can set
(and those RD requires), each an inline `contract.field_condition`, no error map or path built.

The check answers True only when `trim_payload` would change nothing and `check_payload` would accept the
payload as it is; on False, `finish` runs both (the reference), which decide. So the check never changes an
outcome, only skips work. Measured (benchmarks/map_mixed.py, best of 7, three A/B turns): `Mappings.map` on
the mixed workload 10.6 -> 6.0 us per record (the reference checks alone cost 6.5 us of the 10.6).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connector.mapping.codegen import Code
from connector.mapping.trim_and_refuse import NEEDS_ITEMS
from connector.rd import contract

__all__ = ["checker", "write_check"]

_MAX_ITEMS = contract.LIMITS["line_items"]


def write_check(code: Code, name: str, event_type: str, fields: Mapping[str, Sequence[str] | None]) -> None:
    """`def name(p)`: the check of a payload of `event_type` with no keys but `fields`' (each -> the keys of
    its objects, for `line_items`; None: not known, so a payload with that list is left to the reference)."""
    required = contract.EVENT_TYPES[event_type]
    code.add(0, f"def {name}(p):", "    try:")
    for field in dict.fromkeys([*fields, *required]):
        if field == "line_items":
            _line_items(code, fields[field])
        elif field == "legal_bases":
            code.add(
                2, "if 'legal_bases' in p:", "    a = p['legal_bases']", "    if a.__class__ is not list: return False"
            )
            code.add(3, "for e in a:", f"    if not ({contract.LEGAL_BASIS_CONDITION}): return False")
        else:
            _field(code, 2, "p", field, field in required, item=False)
    if event_type in NEEDS_ITEMS:
        code.add(2, "if p.get('total_items') == 0: return False")
    code.add(1, "except Exception:", "    return False  # a value of an unusual type: the reference decides")
    code.add(1, "return True")


def checker(event_type: str, fields: Mapping[str, Sequence[str] | None]) -> Callable[[dict[str, Any]], bool]:
    """The check `write_check` writes, compiled on its own (a compiled mapping writes it into its source)."""
    code = Code()
    write_check(code, "_ok", event_type, fields)
    namespace = dict(contract.CONDITION_NAMES)
    exec(compile("\n".join(code.lines) + "\n", f"<check {event_type}>", "exec"), namespace)  # our own source
    check: Callable[[dict[str, Any]], bool] = namespace["_ok"]
    return check


def _line_items(code: Code, keys: Sequence[str] | None) -> None:
    code.add(2, "if 'line_items' in p:")
    if keys is None:
        code.add(3, "return False")
        return
    code.add(3, "a = p['line_items']", f"if a.__class__ is not list or len(a) > {_MAX_ITEMS}: return False")
    code.add(3, "for e in a:", "    if e.__class__ is not dict: return False")
    required = contract.LINE_ITEM_REQUIRED
    for field in dict.fromkeys([*keys, *required]):
        _field(code, 4, "e", field, field in required, item=True)


def _field(code: Code, ind: int, var: str, field: str, required: bool, item: bool) -> None:
    condition = contract.field_condition(field, required, item)
    if condition is not None:
        code.add(ind, f"v = {var}.get({field!r})", f"if not ({condition}): return False")
