"""Mapping files checked before the first record: every syntax problem and every check error, with its message
(file and line, mapping, RD field, the bad path, a suggestion)."""

from __future__ import annotations

import pytest

from connector.errors import ConfigError
from connector.mapping.spec import MappingFileError
from connector.mapping.spec_parser import parse_text
from connector.mapping.yaml_lines import load_yaml
from connector.rd import contract
from tests.unit.mapping.mapping_support import ENVELOPE, KINDS, PAID, mapping_text, problems


def syntax_problems(text: str) -> list[str]:
    with pytest.raises(MappingFileError) as info:
        parse_text(text, "m.yaml")
    return [str(p) for p in info.value.problems]


# -- the four commonest mistakes: the exact messages --------------------------------------------------------


def test_a_path_typo_names_file_line_mapping_field_path_and_the_fix() -> None:
    body = PAID.replace("email: buyer.email", "email: buyer.emial")
    assert problems(body) == [
        "m.yaml:7: mapping 'm': payload.email: path 'buyer.emial' is not a field of com.acme.shop.Order;"
        " did you mean 'buyer.email'?"
    ]


def test_a_number_into_a_string_field_asks_for_to_string() -> None:
    body = PAID.replace("identifier: {path: order_number, to: string}", "identifier: order_number")
    assert problems(body) == [
        "m.yaml:8: mapping 'm': payload.identifier: path 'order_number' is an integer (int/long);"
        " RD's 'identifier' is a string: add 'to: string'"
    ]


def test_an_event_type_typo_is_suggested() -> None:
    body = PAID.replace("ECOMMERCE_ORDER_PAID", "ECOMMERCE_ORDER_PIAD")
    assert problems(body) == [
        "m.yaml:5: mapping 'm': event_type: 'ECOMMERCE_ORDER_PIAD' is not an RD event type;"
        " did you mean 'ECOMMERCE_ORDER_PAID'?"
    ]


def test_a_required_field_left_out_is_named_with_its_event_type() -> None:
    body = PAID.replace("  currency: {value: BRL}\n", "")
    assert problems(body) == [
        "m.yaml:3: mapping 'm': payload: ECOMMERCE_ORDER_PAID requires 'currency': add it to payload"
    ]


# -- RD's side: event types and fields -----------------------------------------------------------------------


def test_a_removed_event_type_names_its_replacement() -> None:
    [message] = problems(PAID.replace("ECOMMERCE_ORDER_PAID", "ORDER_PLACED"))
    assert "'ORDER_PLACED' was removed from RD's API on 2025-12-31: use ECOMMERCE_ORDER_PLACED" in message


def test_a_field_rd_does_not_accept_is_a_typo() -> None:
    [message] = problems(PAID + "  mobile_phon: buyer.phone\n")
    assert message.endswith(
        "payload.mobile_phon: RD accepts no field 'mobile_phon' in ECOMMERCE_ORDER_PAID; did you mean 'mobile_phone'?"
    )


def test_a_field_none_of_the_possible_types_accepts_is_an_error_one_of_them_is_enough() -> None:
    cases = """
event_type:
  path: status
  cases: {PAID: ECOMMERCE_ORDER_PAID, CANCELLED: ECOMMERCE_ORDER_CANCELLED}
payload:
  email: buyer.email
  identifier: {path: order_number, to: string}
  currency: {value: BRL}
  price: {path: total_cents, divide: 100}
  total_items: {sum: items, of: qty}
  cancel_reason: {value: other}
"""
    assert problems(cases) == []
    [message] = problems(cases + "  tracking_code: {value: X}\n")
    assert "RD accepts no field 'tracking_code' in ECOMMERCE_ORDER_PAID, ECOMMERCE_ORDER_CANCELLED" in message


def test_custom_fields_only_where_rd_takes_them() -> None:
    conversion = "event_type: CONVERSION\npayload:\n  email: buyer.email\n  conversion_identifier: {value: x}\n"
    assert problems(conversion + "  cf_plan: {value: pro}\n") == []
    assert "RD accepts no field 'cf_plan'" in problems(PAID + "  cf_plan: {value: pro}\n")[0]


def test_rd_rules_check_constants_now_not_on_every_record() -> None:
    [message] = problems(PAID.replace("currency: {value: BRL}", "currency: {value: real}"))
    assert "payload.currency: 'real': currency must be an ISO 4217 code." in message


def test_a_constant_of_the_wrong_kind() -> None:
    [message] = problems(PAID.replace("currency: {value: BRL}", "currency: {value: 3}"))
    assert "the constant 3 does not fit RD's 'currency', a string" in message


# -- types that do not fit, and what to write instead --------------------------------------------------------


KIND_BODY = "event_type: CONVERSION\npayload:\n  email: email\n  conversion_identifier: {value: x}\n"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param(
            "name: count",
            "path 'count' is an integer (int/long); RD's 'name' is a string: add 'to: string'",
            id="int-string",
        ),
        pytest.param(
            "name: flag", "path 'flag' is a boolean; RD's 'name' is a string: add 'to: string'", id="bool-string"
        ),
        pytest.param(
            "name: at_ms",
            "path 'at_ms' is a timestamp (ms); RD's 'name' is a string: add 'to:"
            " timestamp' (RFC 3339 text) or 'to: string'",
            id="time-string",
        ),
        pytest.param(
            "name: big",
            "path 'big' is a decimal(20, 2); RD's 'name' is a string: it has more"
            " digits than a JSON number keeps exactly"
            " (15); send it with 'to: string'",
            id="big-decimal",
        ),
        pytest.param("name: attrs", "path 'attrs' is a map; a mapping sends strings, numbers", id="map"),
        pytest.param("name: blob", "path 'blob' is a bytes; a mapping sends strings", id="bytes"),
        pytest.param("name: either", "path 'either' is a union of string | integer (int/long)", id="union"),
        pytest.param("name: tags", "path 'tags' is an array; RD's 'name' is a string", id="list-string"),
        pytest.param("tags: email", "path 'email' is a string; RD's 'tags' is a list of strings", id="string-list"),
        pytest.param(
            "available_for_mailing: text_flag",
            "RD's 'available_for_mailing' is a boolean: add 'to: boolean'",
            id="str-bool",
        ),
        pytest.param(
            "name: {path: count, lower: true}",
            "'lower' needs a string; path 'count' is an integer (int/long): add 'to: string' first",
            id="lower-int",
        ),
        pytest.param(
            "name: {path: email, divide: 2}",
            "'divide' and 'multiply' need a number; path 'email' is a string",
            id="divide-str",
        ),
        pytest.param(
            "name: {path: attrs, to: string}",
            "'to: string' cannot convert it: path 'attrs' is a map",
            id="to-string-map",
        ),
        pytest.param("name: {path: at_ms, to: boolean}", "'to: boolean' cannot convert it", id="to-boolean-time"),
        pytest.param("name: {path: flag, to: timestamp}", "'to: timestamp' cannot convert it", id="to-timestamp-bool"),
        pytest.param("name: {path: flag, to: number}", "'to: number' cannot convert it", id="to-number-bool"),
        pytest.param(
            "name: [email, count]",
            "the paths of a list must have one type: 'email' is a string, 'count' is an integer (int/long)",
            id="mixed-paths",
        ),
        pytest.param(
            "name: email.x", "path 'email.x': 'email' is a string, not a record with fields", id="through-a-string"
        ),
        pytest.param(
            "tags: {each: tags, payload: {x: y}}",
            "'each' makes a list of objects; RD's 'tags' is a list of strings",
            id="each-strings",
        ),
        pytest.param("name: {value: [a]}", "the constant ['a'] does not fit RD's 'name', a string", id="const-list"),
    ],
)
def test_types_that_do_not_fit_say_what_to_write(line: str, message: str) -> None:
    found = problems(KIND_BODY + f"  {line}\n", KINDS)
    assert len(found) == 1 and message in found[0], found


@pytest.mark.parametrize(
    ("field", "line", "message"),
    [
        (
            "price",
            "price: text_number",
            "RD's 'price' is a number: add 'to: number' (a value that is not a number"
            " is then dead-lettered invalid_field)",
        ),
        ("price", "price: big", "more digits than a JSON number keeps exactly (15); send it with 'to: string'"),
        (
            "price",
            "price: {path: big, to: number}",
            "path 'big' is a decimal(20, 2): more digits than a JSON number keeps exactly (15)",
        ),
        ("total_items", "total_items: ratio", "RD's 'total_items' is an integer: add 'to: integer'"),
        ("total_items", "total_items: {path: count, divide: 2}", "'divide' makes a number that need not be whole"),
        ("total_items", "total_items: {sum: tags}", "a sum needs numbers; 'tags[]' is a string"),
        ("total_items", "total_items: {sum: email}", "'sum: email' needs an array; it is a string"),
        ("total_items", "total_items: {count: email}", "'count: email' needs an array; it is a string"),
        (
            "line_items",
            "line_items: tags",
            "RD's 'line_items' is a list of line items: map it with {each: ARRAY, payload: {...}}",
        ),
        (
            "line_items",
            "line_items: {each: tags, payload: {product_id: x}}",
            "'each: tags' needs an array of records; it is an array",
        ),
    ],
)
def test_numbers_and_lists_that_do_not_fit(field: str, line: str, message: str) -> None:
    body = (
        "event_type: ECOMMERCE_ORDER_PAID\npayload:\n  email: email\n  identifier:"
        " {value: o}\n  currency: {value: BRL}\n"
        "  price: amount\n  total_items: count\n"
    )
    body = body.replace(f"  {field}: {'amount' if field == 'price' else 'count'}\n", "") + f"  {line}\n"
    found = problems(body, KINDS)
    assert len(found) == 1 and message in found[0], found


def test_timestamp_fields_want_rfc3339_text() -> None:
    body = KIND_BODY.replace("CONVERSION", "CALL_FINISHED").replace("  conversion_identifier: {value: x}\n", "")
    body += "  call_from_number: {value: '1'}\n  call_status: {value: ok}\n"
    assert problems(body + "  call_started_at: at_ms\n", KINDS) == []
    assert "add 'to: timestamp' (epoch milliseconds)" in problems(body + "  call_started_at: count\n", KINDS)[0]
    assert "add 'to: timestamp'" in problems(body + "  call_started_at: text_time\n", KINDS)[0]


def test_line_items_fields_are_checked_like_payload_fields() -> None:
    each = (
        PAID + "  line_items:\n    each: items\n    payload: {product_id: sku, product_titel: title, price:"
        " {path: unit_cents, divide: 100}, quantity: qty, sku: skew}\n"
    )
    found = problems(each)
    assert any(
        "payload.line_items[].product_titel: RD's line_items have no field"
        " 'product_titel'; did you mean 'product_title'?" in p
        for p in found
    )
    assert any("payload.line_items: RD requires 'product_title' of each of its line_items" in p for p in found)
    assert any(
        "path 'items[].skew' is not a field of com.acme.shop.Item; did you mean 'items[].sku'?" in p for p in found
    )


# -- event types chosen from a field -----------------------------------------------------------------------


def test_cases_must_be_symbols_of_the_enum() -> None:
    body = PAID.replace(
        "event_type: ECOMMERCE_ORDER_PAID",
        "event_type:\n  path: status\n  cases: {PAIDD: ECOMMERCE_ORDER_PAID}\n  otherwise: skip",
    )
    [message] = problems(body)
    assert (
        "event_type.cases.PAIDD: 'PAIDD' is not a symbol of com.acme.shop.Status (DRAFT,"
        " PLACED, PAID, CANCELLED); did you mean 'PAID'?" in message
    )


def test_an_event_type_from_a_record_or_a_missing_path() -> None:
    body = PAID.replace(
        "event_type: ECOMMERCE_ORDER_PAID", "event_type: {path: buyer, cases: {x: ECOMMERCE_ORDER_PAID}}"
    )
    assert (
        "path 'buyer' is a record com.acme.shop.Buyer; an event type is chosen by an enum, string" in problems(body)[0]
    )
    body = PAID.replace(
        "event_type: ECOMMERCE_ORDER_PAID", "event_type: {path: state, cases: {x: ECOMMERCE_ORDER_PAID}}"
    )
    assert "path 'state' is not a field of com.acme.shop.Order; did you mean 'status'?" in problems(body)[0]


def test_every_case_skipped_is_an_error() -> None:
    body = PAID.replace(
        "event_type: ECOMMERCE_ORDER_PAID", "event_type: {path: status, cases: {PAID: skip}, otherwise: skip}"
    )
    assert problems(body) == [
        "m.yaml:5: mapping 'm': event_type: no case gives an event type: every record would be skipped"
    ]


# -- unwrap and builtins ------------------------------------------------------------------------------------


def test_unwrap_needs_a_debezium_envelope() -> None:
    [message] = problems("unwrap: debezium\n" + PAID)
    assert (
        "'unwrap: debezium' needs a Debezium envelope (a record field 'after' and a"
        " string field 'op'); com.acme.shop.Order has" in message
    )
    assert problems(PAID, ENVELOPE)[0].endswith(
        "path 'buyer.email' is not a field of dbserver1.public.checkouts.Envelope"
    )


def test_passthrough_needs_event_type_and_payload_json() -> None:
    assert problems("builtin: passthrough") == [
        "m.yaml:3: mapping 'm': builtin: 'builtin: passthrough' needs a string"
        " field 'event_type' in com.acme.shop.Order",
        "m.yaml:3: mapping 'm': builtin: 'builtin: passthrough' needs a string field"
        " 'payload_json' in com.acme.shop.Order",
    ]


# -- syntax ----------------------------------------------------------------------------------------------------


def test_yaml_errors_name_the_line() -> None:
    with pytest.raises(ConfigError, match=r"m.yaml:4: not valid YAML"):
        parse_text("version: 1\nmappings:\n  - name: [x\n", "m.yaml")
    with pytest.raises(ConfigError, match=r"m.yaml:6: key 'event_type' is given twice \(first on line 5\)"):
        parse_text(mapping_text("event_type: A\nevent_type: B\npayload: {email: x}"), "m.yaml")


def test_yaml_lines_of_mappings_and_lists() -> None:
    data = load_yaml("a:\n  - x\n  - y: 1\n    z: 2\n", "f")
    assert data.lines == {"a": 1} and data["a"].lines == [2, 3] and data["a"][1].lines == {"y": 3, "z": 4}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\nmappings: []\n", "m.yaml:1: version: expected 'version: 1', got 2"),
        ("version: 1\nmapings: []\n", "m.yaml:2: unknown key 'mapings'; did you mean 'mappings'?"),
        ("version: 1\nmappings: {}\n", "m.yaml:2: mappings: expected a list of mappings"),
        ("- 1\n", "m.yaml:1: expected a mapping with 'version: 1' and 'mappings:'"),
        (mapping_text("evnt_type: X\npayload: {email: x}"), "unknown key 'evnt_type'; did you mean 'event_type'?"),
        (
            mapping_text("event_type: X\npayload: {email: x}\ntopics: 5"),
            "topics: expected a list of topic names, got 5",
        ),
        (
            mapping_text("event_type: X\npayload: {email: x}\nunwrap: debezum"),
            "unwrap: expected debezium, got 'debezum'; did you mean 'debezium'?",
        ),
        (
            mapping_text("event_type: X\npayload: {email: buyer..email}"),
            "payload.email: expected a dotted path of field names (like buyer.email), got 'buyer..email'",
        ),
        (
            mapping_text("event_type: X\npayload: {email: 5}"),
            "payload.email: expected a path, a list of paths or a mapping, got 5; a constant is written {value: 5}",
        ),
        (
            mapping_text("event_type: X\npayload: {email: {pth: x}}"),
            "payload.email: expected one of the keys value, sum, count, each, path; did you mean 'path'?",
        ),
        (
            mapping_text("event_type: X\npayload: {email: {path: x, lowr: true}}"),
            "payload.email: unknown key 'lowr'; did you mean 'lower'?",
        ),
        (
            mapping_text("event_type: X\npayload: {email: {path: x, lower: true, upper: true}}"),
            "'lower' and 'upper' cannot both be true",
        ),
        (
            mapping_text("event_type: X\npayload: {email: {path: x, lower: yes please}}"),
            "'lower' must be true or false",
        ),
        (
            mapping_text("event_type: X\npayload: {email: {path: x, to: text}}"),
            "'to' must be one of string, integer, number, boolean, timestamp, got 'text'",
        ),
        (
            mapping_text("event_type: X\npayload: {price: {path: x, divide: 0}}"),
            "'divide' must be a non-zero number, got 0",
        ),
        (
            mapping_text("event_type: X\npayload: {email: {path: x, default: null}}"),
            "'default: null' means no default: leave it out",
        ),
        (mapping_text("event_type: X\npayload: {}"), "payload: expected a mapping of RD payload fields to values"),
        (mapping_text("event_type: {cases: {A: B}}\npayload: {email: x}"), "event_type.path: expected a dotted path"),
        (
            mapping_text("event_type: {path: s, cases: {}}\npayload: {email: x}"),
            "event_type.cases: expected a mapping of values to event types",
        ),
        (
            mapping_text("builtin: passthrough\nevent_type: X"),
            "event_type: a 'builtin: passthrough' mapping takes no 'event_type'",
        ),
        (
            mapping_text("event_type: X\npayload: {email: x}")
            + "tests:\n  - {name: t, mapping: m, input: {}, expect: skipped}\n",
            "expect: expected skip, {dead_letter: REASON} or {event_type: T, payload: {...}}",
        ),
        (
            mapping_text("event_type: X\npayload: {email: x}")
            + "tests:\n  - {name: t, mapping: m, input: 3, expect: skip}\n",
            "test 't': input: expected the record as a mapping",
        ),
    ],
)
def test_syntax_problems(text: str, message: str) -> None:
    found = syntax_problems(text)
    assert any(message in p for p in found), found


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = mapping_text("evnt_type: X\npayload: {email: 5, name: {path: x, to: text}}")
    assert len(syntax_problems(text)) == 4  # unknown key, missing event_type, two payload fields


def test_the_rd_fields_table_agrees_with_rd_rules() -> None:
    assert set(contract.EVENT_FIELDS) == set(contract.EVENT_TYPES)
    for event_type, required in contract.EVENT_TYPES.items():
        assert all(contract.accepts(event_type, name) for name in required)
    errors = contract.payload_errors("ECOMMERCE_ORDER_PAID", {"line_items": [{}]})
    refused = {path.split(".")[-1] for path in errors if path.startswith("line_items[0].")}
    assert refused == set(contract.LINE_ITEM_REQUIRED)
    assert contract.accepts("CONVERSION", "cf_anything") == contract.STRING
    assert contract.accepts("SALE", "cf_anything") is None


def test_two_equally_close_names_are_both_suggested() -> None:
    from connector.mapping.suggest import suggest

    types = ["ECOMMERCE_ORDER_PLACED", "ECOMMERCE_ORDER_PAID", "ECOMMERCE_ORDER_CANCELLED"]
    # Two edits from both PLACED and PAID: naming only the more similar one would point away from PAID.
    assert (
        suggest("ECOMMERCE_ORDER_PAYED", types) == "; did you mean 'ECOMMERCE_ORDER_PLACED' or 'ECOMMERCE_ORDER_PAID'?"
    )
    assert suggest("ECOMMERCE_ORDER_PIAD", types) == "; did you mean 'ECOMMERCE_ORDER_PAID'?"
    assert suggest("SOMETHING_ELSE", types) == ""
