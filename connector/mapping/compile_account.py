"""A mapping's `account`, compiled: which RD account a record's event goes to, a constant or the value at a
path looked up in the case table (`otherwise`: an account, or `dead_letter` with reason `unknown_account`).

The names are checked against the configured accounts when the connector starts (`check_account_names`,
called by `mappings.checked_mappings`); the path and the case values against the record's schema here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from connector.errors import MappingError
from connector.mapping.avro_view import AvroType, PathError, RecordView, Step
from connector.mapping.spec import DEAD_LETTER, EventTypeSpec, MappingSpec, Problem
from connector.mapping.suggest import suggest

__all__ = ["AccountOf", "check_account_names", "compile_account"]

#: record -> account name (None: the mapping names none, its events go to the only or `default` account)
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
        if name == DEAD_LETTER and where != "account":
            continue
        if name not in accounts:
            known = ", ".join(accounts) or "none"
            problems.append(spec.problem(line, where, f"'{name}' is not a configured RD account (configured: "
                                         f"{known}){suggest(str(name), list(accounts))}"))  # fmt: skip
    return problems


def compile_account(
    spec: MappingSpec, view: RecordView, root: AvroType | None
) -> tuple[AccountOf | None, list[Problem]]:
    """The function giving a record's account (None when `spec` names no account), or the problems. `root`
    is the record paths start from (the envelope's `after` for `unwrap: debezium`)."""
    account = spec.account
    if account is None:
        return None, []
    if account.constant is not None:
        name = account.constant
        return (lambda record: name), []
    assert account.path is not None
    if root is None:
        return None, []  # the mapping's own problem (a bad envelope) is reported by its compilation
    try:
        kind, steps = view.resolve(root, account.path)
    except PathError as exc:
        return None, [spec.problem(account.line, "account.path", str(exc))]
    if kind.kind not in ("enum", "string", "int", "boolean"):
        message = (
            f"path '{account.path}' is {kind.describe()}; an account is chosen by an enum, string, integer or boolean"
        )
        return None, [spec.problem(account.line, "account.path", message)]
    problems = _case_problems(spec, account, kind)
    if problems:
        return None, problems
    if spec.unwrap == "debezium":
        steps = [Step("after", False), *steps]
    return _chooser(spec.name, account, kind.kind, steps), []


def _chooser(mapping: str, account: EventTypeSpec, kind: str, steps: list[Step]) -> AccountOf:
    cases = dict(account.cases)
    otherwise = account.otherwise
    fields = [step.field for step in steps]
    path = account.path
    choices = f" matches no account case ({', '.join(cases)}) and otherwise is dead_letter"

    def choose(record: Mapping[str, Any]) -> str:
        value: Any = record
        for name in fields:
            value = value[name]
            if value is None:
                break
        if value is None:
            key = None
        elif kind == "int":
            key = str(value)
        elif kind == "boolean":
            key = "true" if value else "false"
        else:
            key = value
        chosen = cases.get(key, otherwise) if key is not None else otherwise
        if chosen == DEAD_LETTER:
            raise MappingError(
                "unknown_account",
                f"mapping {mapping}: {path}={value!r}{choices}",
                f"mapping {mapping}: {path}: its value{choices}",
            )
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
        elif kind.kind == "int" and not text.lstrip("-").isdigit():
            problems.append(spec.problem(line, where, f"'{account.path}' is an integer; '{text}' is not"))
        elif kind.kind == "boolean" and text not in ("true", "false"):
            problems.append(spec.problem(line, where, f"'{account.path}' is a boolean: use true or false"))
    return problems
