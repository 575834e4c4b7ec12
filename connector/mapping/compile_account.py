"""A mapping's `account`, compiled: which RD account a record's event goes to, a constant or the value at a
path looked up in the case table (`otherwise`: an account, or `dead_letter` with reason `unknown_account`).

The names are checked against the configured accounts when the connector starts (`check_account_names`,
called by `mappings.checked_mappings`); the path and the case values against the record's schema here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

from connector.errors import MappingError
from connector.mapping.avro_view import AvroType, PathError, RecordView, Step
from connector.mapping.spec import DEAD_LETTER, SKIP, EventTypeSpec, MappingSpec, Problem
from connector.mapping.suggest import suggest

__all__ = ["AccountOf", "check_account_names", "compile_account"]

#: An integer case as the record's value prints (`str(value)`): no leading zeros, no '+', ASCII digits.
_INTEGER: Final = re.compile(r"0|-?[1-9][0-9]*")

#: record -> account name (a mapping without `account:` has none: its events go to the only or `default` one)
AccountOf = Callable[[Mapping[str, Any]], str]


def check_account_names(spec: MappingSpec, accounts: Collection[str], default: str | None) -> list[Problem]:
    """Problems of the names `spec.account` gives (each must be a configured account), or of its lack of one
    when there are several accounts and no `default`."""
    account = spec.account
    if account is None:
        if default is None and len(accounts) > 1:
            return [spec.problem(spec.line, "account", f"no 'account:', and there are {len(accounts)} accounts "
                                 f"({', '.join(accounts)}) without a 'default': say which one")]  # fmt: skip
        return []
    checks = [(account.line, "account", account.constant)] if account.constant is not None else []
    checks += [(account.case_lines[k], f"account.cases.{k}", name) for k, name in account.cases.items()]
    if account.constant is None:
        checks.append((account.line, "account.otherwise", account.otherwise))
    problems = []
    for line, where, name in checks:
        if name in (DEAD_LETTER, SKIP):  # not account names: `compile_account` reports them where misplaced
            continue
        if name not in accounts:
            known = ", ".join(accounts) or "none"
            problems.append(spec.problem(line, where, f"'{name}' is not a configured RD account (configured: "
                                         f"{known}){suggest(str(name), list(accounts))}"))  # fmt: skip
    return problems


def compile_account(
    spec: MappingSpec, view: RecordView, root: AvroType | None
) -> tuple[AccountOf | str | None, list[Problem]]:
    """The account of `spec`'s events: its name when constant, else the function choosing it from a record
    (None when `spec` names no account), or the problems. `root` is the record paths start from (the
    envelope's `after` for `unwrap: debezium`)."""
    account = spec.account
    if account is None:
        return None, []
    problems = _outcome_problems(spec, account)
    if account.constant is not None:
        return (None if problems else account.constant), problems
    assert account.path is not None
    if root is None:
        return None, problems  # the mapping's own problem (a bad envelope) is reported by its compilation
    try:
        kind, steps = view.resolve(root, account.path)
    except PathError as exc:
        return None, [*problems, spec.problem(account.line, "account.path", str(exc))]
    if kind.kind not in ("enum", "string", "int", "boolean"):
        message = (
            f"path '{account.path}' is {kind.describe()}; an account is chosen by an enum, string, integer or boolean"
        )
        return None, [*problems, spec.problem(account.line, "account.path", message)]
    problems += _case_problems(spec, account, kind)
    if problems:
        return None, problems
    if spec.unwrap == "debezium":
        steps = [Step("after", False), *steps]
    return _chooser(spec.name, account, kind.kind, steps), []


def _outcome_problems(spec: MappingSpec, account: EventTypeSpec) -> list[Problem]:
    """`dead_letter` as the constant account, and `skip` anywhere: neither is an account."""
    problems = []
    if account.constant == DEAD_LETTER:
        message = (
            "'dead_letter' is not an account: a constant 'account:' names one (dead_letter is an outcome of cases)"
        )
        problems.append(spec.problem(account.line, "account", message))
    outcomes = [("account", account.constant)] if account.constant is not None else []
    outcomes += [(f"account.cases.{k}", name) for k, name in account.cases.items()]
    outcomes += [("account.otherwise", account.otherwise)] if account.constant is None else []
    for where, name in outcomes:
        if name == SKIP:
            line = account.case_lines.get(where.removeprefix("account.cases."), account.line)
            message = "'skip' is not an account: a record is skipped by its event_type (otherwise: skip)"
            problems.append(spec.problem(line, where, message))
    return problems


def _chooser(mapping: str, account: EventTypeSpec, kind: str, steps: list[Step]) -> AccountOf:
    """The function choosing an account: the value at the path (None at the first null hop) as the text of
    a case, else `otherwise`; `dead_letter` raises `MappingError` `unknown_account`."""
    cases = dict(account.cases)
    otherwise = account.otherwise
    fields = [step.field for step in steps]
    prefix = f"mapping {mapping}: {account.path}"
    no_case = f" matches no account case ({', '.join(cases)}) and otherwise is dead_letter"
    its_case = " matches an account case that says dead_letter"

    def choose(record: Mapping[str, Any]) -> str:
        value: Any = record
        for name in fields:
            value = value[name]
            if value is None:
                break
        if value is None:
            chosen = None
        elif kind == "int":
            chosen = cases.get(str(value))
        elif kind == "boolean":
            chosen = cases.get("true" if value else "false")
        else:
            chosen = cases.get(value)
        why = its_case
        if chosen is None:
            chosen, why = otherwise, no_case
        if chosen == DEAD_LETTER:
            raise MappingError("unknown_account", f"{prefix}={value!r}{why}", f"{prefix}: its value{why}")
        return chosen

    return choose


def _case_problems(spec: MappingSpec, account: EventTypeSpec, kind: AvroType) -> list[Problem]:
    problems = []
    for text, line in account.case_lines.items():
        where = f"account.cases.{text}"
        if kind.kind == "enum" and text not in kind.symbols:
            message = (
                f"'{text}' is not a symbol of {kind.name} ({', '.join(kind.symbols)}){suggest(text, kind.symbols)}"
            )
            problems.append(spec.problem(line, where, message))
        elif kind.kind == "int" and not _INTEGER.fullmatch(text):
            problems.append(spec.problem(line, where, f"'{account.path}' is an integer; '{text}' is not"))
        elif kind.kind == "boolean" and text not in ("true", "false"):
            problems.append(spec.problem(line, where, f"'{account.path}' is a boolean: use true or false"))
    return problems
