"""A mapping's `account:`: the RD account its events go to. A constant, or `{path, cases, otherwise}` choosing
by a field's value (`otherwise: dead_letter` refuses the record `unknown_account`); checked against the
record's schema when compiled, and against the configured accounts before the first record."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.avro.catalog import SchemaCatalog
from connector.commands.run import build_pipeline
from connector.config import load_settings
from connector.errors import ConfigError, MappingError
from connector.mapping.avro_view import RecordView
from connector.mapping.compile_account import compile_account
from connector.mapping.event import Skipped
from connector.mapping.file_tests import record_from_input
from connector.mapping.mappings import Mappings, checked_mappings
from connector.mapping.spec import DEAD_LETTER, EventTypeSpec, MappingFileError, MappingSpec
from tests.unit.mapping.mapping_support import (
    ENVELOPE,
    EXAMPLES,
    KIND_VALUES,
    KINDS,
    ORDER,
    PAID,
    compiled,
    event,
    mapping_text,
    order,
    problems,
    refusal,
    run,
)

ORDERS = EXAMPLES / "order-service"
ROOT = Path(__file__).parents[3]

#: PAID's body ends at line 11 of `mapping_text`: `account:` is line 12, its keys 13, 14, its cases 15...
BY_STATUS = (
    PAID
    + """account:
  path: status
  cases:
    PAID: brand-a
    CANCELLED: brand-b
  otherwise: brand-c
"""
)
KIND_BODY = "event_type: CONVERSION\npayload:\n  email: email\n  conversion_identifier: {value: x}\n"


def routed(cases: str, path: str, otherwise: str = DEAD_LETTER, body: str = PAID) -> str:
    lines = "\n".join(f"    {line}" for line in cases.strip().splitlines())
    return body + f"account:\n  path: {path}\n  cases:\n{lines}\n  otherwise: {otherwise}\n"


def kinds(**over: Any) -> dict[str, Any]:
    return {**KIND_VALUES, **over}


# -- at run time: the account stamped on each event ---------------------------------------------------------


def test_without_account_the_event_has_none_the_only_or_default_account_takes_it() -> None:
    assert event(PAID, order()).account is None


def test_a_constant_account_is_stamped_on_every_event() -> None:
    assert event(PAID + "account: brand-a\n", order()).account == "brand-a"
    assert event(PAID + "account: ' brand-a '\n", order()).account == "brand-a"


@pytest.mark.parametrize(
    ("status", "account"), [("PAID", "brand-a"), ("CANCELLED", "brand-b"), ("DRAFT", "brand-c"), ("PLACED", "brand-c")]
)
def test_cases_of_an_enum_field_else_otherwise(status: str, account: str) -> None:
    assert event(BY_STATUS, order(status=status)).account == account


def test_the_event_itself_does_not_change_with_its_account() -> None:
    assert event(BY_STATUS, order()).body == event(PAID, order()).body


def test_cases_of_a_string_field_through_a_nested_record() -> None:
    body = routed("Ana@X.com: brand-a\nbia@y.com: brand-b", "buyer.email", "brand-c")
    assert event(body, order()).account == "brand-a"
    assert event(body, order(buyer={"email": "bia@y.com"})).account == "brand-b"
    assert event(body, order(buyer={"email": "ana@x.com"})).account == "brand-c"  # compared as written


def test_cases_of_an_integer_field_negative_and_long() -> None:
    body = routed("7: brand-a\n-3: brand-b\n'9007199254740993': brand-c", "order_number", "default")
    assert event(body, order(order_number=7)).account == "brand-a"
    assert event(body, order(order_number=-3)).account == "brand-b"
    assert event(body, order(order_number=9_007_199_254_740_993)).account == "brand-c"
    assert event(body, order(order_number=8)).account == "default"


def test_cases_of_a_boolean_field() -> None:
    body = routed("true: brand-a\nfalse: brand-b", "flag", body=KIND_BODY)
    assert event(body, kinds(flag=True), KINDS).account == "brand-a"
    assert event(body, kinds(flag=False), KINDS).account == "brand-b"


def test_cases_of_a_nullable_field_none_goes_to_otherwise() -> None:
    body = routed("'yes': brand-a", "text_flag", "brand-z", body=KIND_BODY)
    assert event(body, kinds(text_flag="yes"), KINDS).account == "brand-a"
    assert event(body, kinds(text_flag=None), KINDS).account == "brand-z"
    assert event(body, kinds(), KINDS).account == "brand-z"  # left out: its default, null


def test_a_nullable_field_with_otherwise_dead_letter_refuses_none() -> None:
    body = routed("'yes': brand-a", "text_flag", body=KIND_BODY)
    error = refusal(body, kinds(text_flag=None), KINDS)
    assert error.reason == "unknown_account"
    assert error.message == "mapping m: text_flag=None matches no account case (yes) and otherwise is dead_letter"


def test_otherwise_dead_letter_refuses_unknown_account_naming_mapping_path_and_value() -> None:
    body = routed("PAID: brand-a\nCANCELLED: brand-b", "status")
    error = refusal(body, order(status="DRAFT"))
    assert error.reason == "unknown_account"
    assert error.message == (
        "mapping m: status='DRAFT' matches no account case (PAID, CANCELLED) and otherwise is dead_letter"
    )
    assert "DRAFT" not in error.log_message and error.log_message.startswith("mapping m: status: its value")


def test_otherwise_is_dead_letter_when_left_out() -> None:
    body = PAID + "account:\n  path: status\n  cases: {PAID: brand-a}\n"
    assert refusal(body, order(status="DRAFT")).reason == "unknown_account"


def test_a_case_that_says_dead_letter_is_refused_as_such() -> None:
    body = routed("PAID: brand-a\nCANCELLED: dead_letter", "status", "brand-c")
    error = refusal(body, order(status="CANCELLED"))
    assert error.reason == "unknown_account"
    assert error.message == "mapping m: status='CANCELLED' matches an account case that says dead_letter"
    assert event(body, order(status="DRAFT")).account == "brand-c"


def test_a_value_read_from_user_data_is_quoted_only_in_the_message_not_in_the_log() -> None:
    body = routed("a@b.c: brand-a", "buyer.email")
    error = refusal(body, order(buyer={"email": "secret@x.com"}))
    assert "secret@x.com" in error.message and "secret@x.com" not in error.log_message


def test_the_event_type_is_chosen_first_a_no_event_type_refusal_wins() -> None:
    body = """
event_type:
  path: status
  cases: {PAID: ECOMMERCE_ORDER_PAID}
payload:
  email: buyer.email
  identifier: {path: order_number, to: string}
  currency: {value: BRL}
  price: {path: total_cents, divide: 100}
  total_items: {sum: items, of: qty}
account: {path: status, cases: {CANCELLED: brand-a}}
"""
    assert refusal(body, order(status="DRAFT")).reason == "no_event_type"


def test_a_skipped_record_needs_no_account() -> None:
    body = """
event_type:
  path: status
  cases: {PAID: ECOMMERCE_ORDER_PAID}
  otherwise: skip
payload:
  email: buyer.email
  identifier: {path: order_number, to: string}
  currency: {value: BRL}
  price: {path: total_cents, divide: 100}
  total_items: {sum: items, of: qty}
account: {path: buyer.email, cases: {nobody@x.com: brand-a}}
"""
    assert isinstance(run(body, order(status="DRAFT")), Skipped)
    assert refusal(body, order(status="PAID")).reason == "unknown_account"


def test_a_record_that_does_not_fit_its_account_path_is_invalid_field_with_the_mapping_name() -> None:
    result = compiled(BY_STATUS)
    assert result.function is not None
    record = record_from_input(ORDER, order())
    del record["status"]
    with pytest.raises(MappingError) as info:
        result.function(_Only(record, allowed=set(record)))
    assert info.value.reason == "invalid_field"
    assert info.value.message.startswith("mapping m: record does not fit its mapping's account: KeyError")


class _Only(dict[str, Any]):
    """A record that counts its reads (`reads`), and raises KeyError for a field not `allowed`."""

    def __init__(self, data: dict[str, Any], allowed: set[str] | None = None) -> None:
        super().__init__(data)
        self.allowed = allowed
        self.reads: list[str] = []

    def __getitem__(self, key: str) -> Any:
        self.reads.append(key)
        if self.allowed is not None and key not in self.allowed:
            raise KeyError(key)
        return super().__getitem__(key)


# -- Debezium: the path is of the row (`after`) ---------------------------------------------------------------

CHECKOUT_ROW = {
    "id": 981,
    "email": "ana@x.com",
    "customer_name": "Ana",
    "status": "open",
    "cart_url": "https://shop.x/c/981",
    "currency": "BRL",
    "total": 259.80,
    "item_count": 2,
    "updated_at": 1_769_860_800_000_000,
}
SOURCE = {"version": "2", "connector": "postgresql", "name": "db", "ts_ms": 1, "db": "shop", "schema": "public",
          "table": "checkouts"}  # fmt: skip
CHECKOUTS = """
unwrap: debezium
event_type:
  path: status
  cases: {open: ECOMMERCE_CHECKOUT_STARTED}
  otherwise: skip
payload:
  email: email
  identifier: {path: id, to: string}
  checkout_url: cart_url
  currency: currency
  price: total
  total_items: item_count
account:
  path: currency
  cases: {BRL: brasil, USD: usa}
"""


def change(op: str, after: dict[str, Any] | None) -> dict[str, Any]:
    return {"before": None, "after": after, "source": SOURCE, "op": op}


def test_debezium_the_account_path_is_read_in_the_row_after_the_change() -> None:
    assert event(CHECKOUTS, change("c", CHECKOUT_ROW), ENVELOPE).account == "brasil"
    assert event(CHECKOUTS, change("u", {**CHECKOUT_ROW, "currency": "USD"}), ENVELOPE).account == "usa"
    error = refusal(CHECKOUTS, change("u", {**CHECKOUT_ROW, "currency": "EUR"}), ENVELOPE)
    assert error.reason == "unknown_account" and "currency='EUR'" in error.message


def test_debezium_deletes_and_rows_the_event_type_skips_need_no_account() -> None:
    assert isinstance(run(CHECKOUTS, change("d", None), ENVELOPE), Skipped)
    assert isinstance(run(CHECKOUTS, change("u", {**CHECKOUT_ROW, "status": "paid", "currency": "EUR"}), ENVELOPE),
                      Skipped)  # fmt: skip


def test_debezium_paths_are_checked_against_the_row_not_the_envelope() -> None:
    assert problems(CHECKOUTS.replace("path: currency", "path: op"), ENVELOPE) == [
        "m.yaml:17: mapping 'm': account.path: path 'op' is not a field of dbserver1.public.checkouts.Value"
    ]
    [message] = problems(CHECKOUTS.replace("path: currency", "path: curency"), ENVELOPE)
    assert message.endswith(
        "path 'curency' is not a field of dbserver1.public.checkouts.Value; did you mean 'currency'?"
    )


def test_a_bad_envelope_is_reported_once_by_the_mapping_not_by_its_account() -> None:
    [message] = problems(CHECKOUTS, ORDER)
    assert "'unwrap: debezium' needs a Debezium envelope" in message


# -- the cost per record -------------------------------------------------------------------------------------


def test_a_constant_account_does_not_read_the_record_again() -> None:
    reads = {}
    for name, body in (("none", PAID), ("constant", PAID + "account: brand-a\n"), ("path", BY_STATUS)):
        function = compiled(body).function
        assert function is not None
        record = _Only(record_from_input(ORDER, order()))
        function(record)
        reads[name] = record.reads
    assert reads["constant"] == reads["none"]
    assert reads["path"] == [*reads["none"], "status"]  # one field: its path


# -- checked when compiled: the path and the cases against the record's schema --------------------------------


def test_an_unknown_path_is_reported_at_its_line_with_a_suggestion() -> None:
    assert problems(routed("PAID: a", "stauts")) == [
        "m.yaml:12: mapping 'm': account.path: path 'stauts' is not a field of com.acme.shop.Order;"
        " did you mean 'status'?"
    ]
    [message] = problems(routed("x: a", "buyer.emial"))
    assert message.endswith("path 'buyer.emial' is not a field of com.acme.shop.Order; did you mean 'buyer.email'?")


@pytest.mark.parametrize(
    ("path", "body", "what"),
    [
        ("buyer", PAID, "a record com.acme.shop.Buyer"),
        ("items", PAID, "an array"),
        ("ratio", KIND_BODY, "a float/double"),
        ("attrs", KIND_BODY, "a map"),
        ("at_ms", KIND_BODY, "a timestamp (ms)"),
        ("either", KIND_BODY, "a union of string | integer (int/long)"),
    ],
)
def test_a_field_of_a_type_that_cannot_choose_an_account(path: str, body: str, what: str) -> None:
    entry = ORDER if body is PAID else KINDS
    line = 12 if body is PAID else 9
    assert problems(routed("x: a", path, body=body), entry) == [
        f"m.yaml:{line}: mapping 'm': account.path: path '{path}' is {what}; an account is chosen by an enum,"
        " string, integer or boolean"
    ]


def test_an_enum_case_that_is_not_a_symbol_is_reported_at_its_line() -> None:
    assert problems(routed("PAID: brand-a\nPIAD: brand-b", "status")) == [
        "m.yaml:16: mapping 'm': account.cases.PIAD: 'PIAD' is not a symbol of com.acme.shop.Status"
        " (DRAFT, PLACED, PAID, CANCELLED); did you mean 'PAID'?"
    ]


@pytest.mark.parametrize("case", ["seven", "'01'", "'+1'", "'7.0'", "1.5", "'١'"])
def test_an_integer_case_that_is_not_a_number_as_the_field_prints(case: str) -> None:
    [message] = problems(routed(f"7: brand-a\n{case}: brand-b", "order_number"))
    assert message.startswith("m.yaml:16: mapping 'm': account.cases.")
    assert message.endswith(f"'order_number' is an integer; '{message.split('.cases.')[1].split(':')[0]}' is not")


def test_a_boolean_case_that_is_not_true_or_false() -> None:
    assert problems(routed("true: brand-a\n'maybe': brand-b", "flag", body=KIND_BODY), KINDS) == [
        "m.yaml:13: mapping 'm': account.cases.maybe: 'flag' is a boolean: use true or false"
    ]


def test_every_problem_of_the_event_and_of_the_account_is_reported_in_line_order() -> None:
    body = routed("PIAD: brand-a", "status").replace("email: buyer.email", "email: buyer.emial")
    found = problems(body)
    assert [m.split(":")[1] for m in found] == ["7", "15"]


def test_account_dead_letter_as_a_constant_is_refused_otherwise_dead_letter_is_not() -> None:
    assert problems(PAID + "account: dead_letter\n") == [
        "m.yaml:12: mapping 'm': account: 'dead_letter' is not an account: a constant 'account:' names one"
        " (dead_letter is an outcome of cases)"
    ]
    assert problems(routed("PAID: brand-a", "status", "dead_letter")) == []


@pytest.mark.parametrize(
    ("body", "where", "line"),
    [
        (PAID + "account: skip\n", "account", 12),
        (routed("PAID: skip", "status"), "account.cases.PAID", 15),
        (routed("PAID: brand-a", "status", "skip"), "account.otherwise", 12),
    ],
)
def test_skip_is_not_an_account(body: str, where: str, line: int) -> None:
    assert problems(body) == [
        f"m.yaml:{line}: mapping 'm': {where}: 'skip' is not an account: a record is skipped by its event_type"
        " (otherwise: skip)"
    ]


@pytest.mark.parametrize(
    ("account", "message"),
    [
        ("[a, b]", "m.yaml:12: mapping 'm': account: expected an account name, or {path, cases, otherwise}, got"),
        ("{path: status}", "m.yaml:12: mapping 'm': account.cases: expected a mapping of values to account names"),
        ("{path: 'a b', cases: {x: y}}", "m.yaml:12: mapping 'm': account.path: expected a dotted path"),
        ("{path: status, cases: {PAID: 3}}", "m.yaml:12: mapping 'm': account.cases.PAID: expected an account name"),
        ("{path: status, cases: {PAID: a}, otherwise: 3}", "account.otherwise: expected dead_letter or an account"),
        ("{path: status, cases: {PAID: a}, default: b}", "account: unknown key"),
    ],
)
def test_syntax_problems_of_account(account: str, message: str) -> None:
    with pytest.raises(MappingFileError) as info:
        compiled(PAID + f"account: {account}\n")
    assert message in str(info.value), str(info.value)


def test_account_goes_with_a_builtin_passthrough_mapping() -> None:
    catalog = SchemaCatalog.load()
    name = next(n for n in catalog.names() if n.endswith("RdEvent"))
    text = f"version: 1\nmappings:\n  - name: p\n    record: {name}\n    builtin: passthrough\n    account: brand-a\n"
    mappings = Mappings([("p.yaml", text)], catalog=catalog)
    [(_, found, _)] = [r for r in mappings.check(catalog) if r[0].name == "p"]
    assert found == []


# -- checked before the first record: the names against the configured accounts --------------------------------


def _check(tmp_path: Path, body: str, accounts: list[str] | None, record: str = "com.acme.shop.Order") -> list[str]:
    (tmp_path / "m.yaml").write_text(mapping_text(body, record))
    try:
        checked_mappings(str(tmp_path / "m.yaml"), SchemaCatalog.load(ORDERS), accounts=accounts)
    except MappingFileError as exc:
        return [str(p).replace(str(tmp_path) + "/", "") for p in exc.problems]
    return []


def test_names_of_configured_accounts_pass(tmp_path: Path) -> None:
    assert _check(tmp_path, BY_STATUS, ["brand-a", "brand-b", "brand-c"]) == []
    assert _check(tmp_path, PAID + "account: brand-a\n", ["default", "brand-a"]) == []


def test_an_account_not_configured_is_named_at_its_line_with_a_suggestion(tmp_path: Path) -> None:
    assert _check(tmp_path, BY_STATUS, ["brand-a", "brand-b", "brand-d"]) == [
        "m.yaml:12: mapping 'm': account.otherwise: 'brand-c' is not a configured RD account (configured: brand-a,"
        " brand-b, brand-d); did you mean 'brand-a' or 'brand-b'?"
    ]
    assert _check(tmp_path, PAID + "account: acme\n", ["acme-br", "bolt"]) == [
        "m.yaml:12: mapping 'm': account: 'acme' is not a configured RD account (configured: acme-br, bolt);"
        " did you mean 'acme-br'?"
    ]
    [message] = _check(tmp_path, routed("PAID: brnad-a", "status", "dead_letter"), ["brand-a"])
    assert message.startswith("m.yaml:15: mapping 'm': account.cases.PAID: 'brnad-a' is not a configured")
    assert message.endswith("did you mean 'brand-a'?")


def test_names_are_not_checked_without_accounts(tmp_path: Path) -> None:
    assert _check(tmp_path, PAID + "account: anything\n", None) == []


def test_a_mapping_without_account_goes_to_default_or_the_only_account(tmp_path: Path) -> None:
    assert _check(tmp_path, PAID, ["default"]) == []
    assert _check(tmp_path, PAID, ["brand-a"]) == []
    assert _check(tmp_path, PAID, ["brand-a", "default", "brand-b"]) == []


def test_several_accounts_without_default_a_mapping_must_name_one(tmp_path: Path) -> None:
    assert _check(tmp_path, PAID, ["brand-a", "brand-b"]) == [
        "m.yaml:3: mapping 'm': account: no 'account:', and there are 2 accounts (brand-a, brand-b) without a"
        " 'default': say which one"
    ]
    assert _check(tmp_path, PAID + "account: brand-b\n", ["brand-a", "brand-b"]) == []


def test_the_bundled_mappings_are_not_refused_for_naming_no_account(tmp_path: Path) -> None:
    assert _check(tmp_path, PAID + "account: brand-b\n", ["brand-a", "brand-b"]) == []  # the nine bundled ones too


def test_dead_letter_and_skip_are_not_reported_as_unconfigured_accounts_too(tmp_path: Path) -> None:
    found = _check(tmp_path, PAID + "account: dead_letter\n", ["brand-a"])
    assert len(found) == 1 and "is not a configured" not in found[0]


def test_schema_problems_and_account_names_are_reported_together(tmp_path: Path) -> None:
    body = routed("PAID: brand-a", "status", "brand-x").replace("email: buyer.email", "email: buyer.emial")
    found = _check(tmp_path, body, ["brand-a"])
    assert [m.split(":")[1] for m in found] == ["7", "12"]


# -- the run command checks them before anything connects -----------------------------------------------------


def _config(tmp_path: Path, accounts: str, body: str) -> dict[str, str]:
    (tmp_path / "m.yaml").write_text(mapping_text(body))
    (tmp_path / "c.toml").write_text(accounts)
    return {
        "RDC_CONFIG_FILE": str(tmp_path / "c.toml"),
        "RDC_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "RDC_TOPICS": "acme.orders",
        "RDC_SCHEMA_DIR": str(ORDERS),
        "RDC_MAPPINGS": str(tmp_path / "m.yaml"),
    }


TWO = '[accounts.brand-a]\nrd_access_token = "a"\n[accounts.brand-b]\nrd_access_token = "b"\n'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (PAID, "account: no 'account:', and there are 2 accounts (brand-a, brand-b) without a 'default'"),
        (PAID + "account: brand-c\n", "account: 'brand-c' is not a configured RD account (configured: brand-a"),
    ],
)
def test_run_refuses_the_mappings_before_connecting(tmp_path: Path, body: str, expected: str) -> None:
    settings = load_settings(_config(tmp_path, TWO, body))
    with pytest.raises(MappingFileError) as info:
        build_pipeline(settings)
    assert expected in str(info.value)


def test_account_names_the_mappings_use_as_outcomes_are_reserved(tmp_path: Path) -> None:
    for name in ("dead_letter", "skip"):
        env = _config(tmp_path, f'[accounts.{name}]\nrd_access_token = "a"\n', PAID)
        with pytest.raises(ConfigError, match=f"account name '{name}' is reserved"):
            load_settings(env)


# -- a property: the chooser gives a case's account, or otherwise ---------------------------------------------

_KEYS = st.text(alphabet="abcAB-_ 1", min_size=0, max_size=4)
_NAMES = st.sampled_from(["brand-a", "brand-b", "default", "x"])
_STRING_SCHEMA = {"type": "record", "name": "K", "namespace": "p", "fields": [
    {"name": "k", "type": ["null", "string"]}, {"name": "n", "type": "long"}]}  # fmt: skip
_VIEW = RecordView(_STRING_SCHEMA)


def _choose(path: str, cases: dict[str, str], otherwise: str) -> Any:
    account = EventTypeSpec(1, path=path, cases=cases, case_lines=dict.fromkeys(cases, 1), otherwise=otherwise)
    spec = MappingSpec("m", "p.K", "m.yaml", 1, account=account)
    function, found = compile_account(spec, _VIEW, _VIEW.root)
    assert found == [] and callable(function)
    return function


@settings(max_examples=300, deadline=None)
@given(
    cases=st.dictionaries(_KEYS, st.one_of(_NAMES, st.just(DEAD_LETTER)), max_size=5),
    otherwise=st.one_of(_NAMES, st.just(DEAD_LETTER)),
    value=st.one_of(st.none(), _KEYS),
)
def test_property_a_string_value_gets_its_case_or_otherwise(
    cases: dict[str, str], otherwise: str, value: str | None
) -> None:
    choose = _choose("k", cases, otherwise)
    expected = cases.get(value, otherwise) if value is not None else otherwise
    if expected == DEAD_LETTER:
        with pytest.raises(MappingError) as info:
            choose({"k": value, "n": 0})
        assert info.value.reason == "unknown_account" and "mapping m: k=" in info.value.message
    else:
        assert choose({"k": value, "n": 0}) == expected


@settings(max_examples=300, deadline=None)
@given(
    numbers=st.dictionaries(st.integers(-(2**63), 2**63 - 1), _NAMES, max_size=5),
    otherwise=_NAMES,
    value=st.integers(-(2**63), 2**63 - 1),
)
def test_property_an_integer_value_gets_its_case_or_otherwise_and_never_raises(
    numbers: dict[int, str], otherwise: str, value: int
) -> None:
    choose = _choose("n", {str(n): name for n, name in numbers.items()}, otherwise)
    assert choose({"k": None, "n": value}) == numbers.get(value, otherwise)


# -- the example under examples/ ------------------------------------------------------------------------------

MULTI_BRAND = EXAMPLES / "multi-brand"


def _mapping_check(*extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "RDC_SCHEMA_DIR": str(MULTI_BRAND), "RDC_MAPPINGS": str(MULTI_BRAND)}
    for name in [n for n in full if n.startswith("RDC_RD_") or n == "RDC_CONFIG_FILE"]:
        del full[name]
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", "mapping", "check", *extra],
        env={**full, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_mapping_check_checks_account_names_against_the_config_without_reading_its_secrets() -> None:
    done = _mapping_check("--config", str(MULTI_BRAND / "connector.toml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "accounts: the names in 'account:' checked against acme, bolt" in done.stdout


def test_mapping_check_without_accounts_says_it_did_not_check_the_names() -> None:
    done = _mapping_check()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "accounts: none configured" in done.stdout and "are not checked" in done.stdout


def test_mapping_check_fails_on_an_account_not_configured(tmp_path: Path) -> None:
    (tmp_path / "one.toml").write_text('[accounts.acme]\nrd_access_token_env = "ACME_TOKEN"\n')
    done = _mapping_check("--config", str(tmp_path / "one.toml"), RDC_RD_ACCESS_TOKEN="t")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'bolt' is not a configured RD account (configured: default, acme)" in done.stdout
    assert "accounts: the names in 'account:' checked against default, acme" in done.stdout
