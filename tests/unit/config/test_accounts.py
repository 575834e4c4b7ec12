"""`[accounts.<name>]` tables of the TOML configuration: sources of each credential, names, budgets, base
URLs, the account `default` of RDC_RD_*, and secrets that never show (in errors, reprs, log lines)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config import SPECS, Secret, Settings, load_settings
from connector.config.accounts import Account, parse_accounts
from connector.errors import ConfigError
from connector.ops.logs import Redactor

#: Every secret of these tests: no error message, repr or log line may contain one.
TOKEN, CLIENT_SECRET, REFRESH = "tok-SECRET-7f3a", "cs-SECRET-91bd", "rt-SECRET-c402"
SECRETS = (TOKEN, CLIENT_SECRET, REFRESH)
PIPELINE = {"RDC_KAFKA_BOOTSTRAP_SERVERS": "k:9092", "RDC_TOPICS": "orders"}
DEFAULT_RD = {"RDC_RD_ACCESS_TOKEN": "default-SECRET-tok", "RDC_RD_TOKEN_FILE": "/var/lib/rdc/token.json"}
FLOW = {"rd_client_id": "north-app", "rd_client_secret": CLIENT_SECRET, "rd_refresh_token": REFRESH}
_PARSERS = {spec.name: spec.parse for spec in SPECS}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def table(name: str, **keys: Any) -> str:
    return f"[accounts.{name}]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in keys.items())


def load(tmp_path: Path, text: str, env: Mapping[str, str] | None = None) -> Settings:
    path = tmp_path / "rdc.toml"
    path.write_text(text)
    return load_settings(dict(env or {}), path)


def refused(tmp_path: Path, text: str, env: Mapping[str, str] | None = None, *, also: tuple[str, ...] = ()) -> str:
    """The message of the ConfigError that loading `text` raises; it never holds a secret (nor `also`)."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env)
    message = str(info.value)
    for secret in SECRETS + also + tuple(v for v in (env or {}).values() if v.strip()):
        assert secret not in message, message
    return message


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# -- tables and sources ---------------------------------------------------------------------------------------


def test_tables_parsed_in_file_order_with_their_values(tmp_path: Path) -> None:
    text = (
        table("zeta", rd_access_token=TOKEN, requests_per_minute=30)
        + table("alpha", **FLOW, base_url="https://rd.example.com/")
        + table("mid-1_x", rd_access_token="other")
    )
    accounts = load(tmp_path, text).accounts
    assert [a.name for a in accounts] == ["zeta", "alpha", "mid-1_x"]
    zeta, alpha, mid = accounts
    assert zeta == Account("zeta", "https://api.rd.services", 30, access_token=Secret(TOKEN))
    assert alpha == Account(
        "alpha",
        "https://rd.example.com",  # trailing slash stripped, as RDC_RD_BASE_URL's
        120,
        client_id="north-app",
        client_secret=Secret(CLIENT_SECRET),
        refresh_token=Secret(REFRESH),
    )
    assert alpha.refresh_flow and not zeta.refresh_flow
    assert mid.access_token == Secret("other") and mid.token_file is None


def test_no_accounts_table_and_an_empty_one_give_no_accounts(tmp_path: Path) -> None:
    assert load(tmp_path, 'group_id = "g"\n').accounts == ()
    assert load(tmp_path, "[accounts]\n").accounts == ()
    assert load_settings({}).accounts == ()


@pytest.mark.parametrize("key", ["rd_access_token", "rd_client_id", "rd_client_secret", "rd_refresh_token"])
@pytest.mark.parametrize("source", ["inline", "file", "env"])
def test_each_credential_from_each_source(tmp_path: Path, key: str, source: str) -> None:
    values = {"rd_access_token": TOKEN, **FLOW}
    keys: dict[str, Any] = dict(values)
    env: dict[str, str] = {}
    del keys[key]
    if source == "inline":
        keys[key] = f"  {values[key]} "  # surrounding blanks stripped
    elif source == "file":
        keys[f"{key}_file"] = write(tmp_path, "credential", values[key] + "\n")  # a mount's trailing newline
    else:
        keys[f"{key}_env"] = " RD_NORTH_CREDENTIAL "
        env["RD_NORTH_CREDENTIAL"] = values[key] + "\n"
    (north,) = load(tmp_path, table("north", **keys), env).accounts
    assert north == Account(
        "north",
        "https://api.rd.services",
        120,
        access_token=Secret(TOKEN),
        client_id="north-app",
        client_secret=Secret(CLIENT_SECRET),
        refresh_token=Secret(REFRESH),
    )


def test_a_file_is_read_whole_and_only_its_surrounding_blanks_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "token", "\n  tok en\twith inner blanks \r\n\n")
    (north,) = load(tmp_path, table("north", rd_access_token_file=path)).accounts
    assert north.access_token == Secret("tok en\twith inner blanks")


@pytest.mark.parametrize(
    "sources",
    [("", "_file"), ("", "_env"), ("_file", "_env"), ("", "_file", "_env")],
    ids=["inline+file", "inline+env", "file+env", "all-three"],
)
@pytest.mark.parametrize("key", ["rd_access_token", "rd_client_id", "rd_client_secret", "rd_refresh_token"])
def test_a_credential_given_two_ways_is_refused(tmp_path: Path, key: str, sources: tuple[str, ...]) -> None:
    path = write(tmp_path, "credential", REFRESH)
    given = {"": CLIENT_SECRET, "_file": path, "_env": "RD_NORTH"}
    keys = {f"{key}{suffix}": given[suffix] for suffix in sources}
    message = refused(tmp_path, table("north", **keys), {"RD_NORTH": TOKEN})
    named = " and ".join(f"{key}{suffix}" for suffix in sources)
    assert message == f"[accounts.north] sets {named}: give {key} one way only"


@pytest.mark.parametrize(
    "env", [{}, {"RD_NORTH_TOKEN": ""}, {"RD_NORTH_TOKEN": " \n"}], ids=["unset", "empty", "blank"]
)
def test_env_naming_an_unset_or_empty_variable(tmp_path: Path, env: dict[str, str]) -> None:
    message = refused(tmp_path, table("north", rd_access_token_env="RD_NORTH_TOKEN"), {**env, "OTHER": TOKEN})
    assert message == (
        "[accounts.north] rd_access_token_env: the environment variable RD_NORTH_TOKEN is not set or empty: "
        "set it, or give rd_access_token another way"
    )


def test_env_is_the_given_mapping_not_the_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RD_NORTH_TOKEN", TOKEN)
    message = refused(tmp_path, table("north", rd_access_token_env="RD_NORTH_TOKEN"))
    assert "RD_NORTH_TOKEN is not set or empty" in message


@pytest.mark.parametrize(
    ("make", "error"),
    [
        pytest.param(lambda d: str(d / "missing"), "FileNotFoundError", id="missing"),
        pytest.param(lambda d: str(d), "IsADirectoryError", id="directory"),
        pytest.param(lambda d: _binary(d), "UnicodeDecodeError", id="not-utf8"),
    ],
)
def test_file_that_cannot_be_read(tmp_path: Path, make: Any, error: str) -> None:
    path = make(tmp_path)
    message = refused(tmp_path, table("north", **FLOW, rd_access_token_file=path))
    assert message == (
        f"[accounts.north] rd_access_token_file: cannot read {path} ({error}): expected a readable UTF-8 file "
        "holding rd_access_token"
    )


def _binary(directory: Path) -> str:
    path = directory / "binary"
    path.write_bytes(b"\xff\xfe" + TOKEN.encode())
    return str(path)


@pytest.mark.parametrize("content", ["", "\n", "  \t\r\n"], ids=["empty", "newline", "blanks"])
def test_file_that_is_empty(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, "client_secret", content)
    message = refused(tmp_path, table("north", rd_client_id="north-app", rd_client_secret_file=path))
    assert message == f"[accounts.north] rd_client_secret_file: {path} is empty: expected it to hold rd_client_secret"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("rd_access_token = 123456789", "rd_access_token is invalid", id="secret-int"),
        pytest.param('rd_access_token = ""', "rd_access_token is invalid", id="secret-empty"),
        pytest.param('rd_access_token = "  "', "rd_access_token is invalid", id="secret-blank"),
        pytest.param('rd_refresh_token = ["rt-SECRET-c402"]', "rd_refresh_token is invalid", id="secret-list"),
        pytest.param("rd_client_secret = { v = 1 }", "rd_client_secret is invalid", id="secret-table"),
        pytest.param("rd_client_id = 42", "rd_client_id 42 is invalid", id="client-id-int"),
        pytest.param("rd_client_id = true", "rd_client_id True is invalid", id="client-id-bool"),
        pytest.param("rd_access_token_file = 5", "rd_access_token_file 5 is invalid", id="file-int"),
        pytest.param('rd_access_token_file = ""', "rd_access_token_file '' is invalid", id="file-empty"),
        pytest.param("rd_access_token_env = false", "rd_access_token_env False is invalid", id="env-bool"),
        pytest.param("rd_access_token_env = 1.5", "rd_access_token_env 1.5 is invalid", id="env-float"),
    ],
)
def test_non_string_or_empty_values(tmp_path: Path, line: str, expected: str) -> None:
    message = refused(tmp_path, f"[accounts.north]\n{line}\n", also=("123456789",))
    assert message == f"[accounts.north] {expected}: expected a non-empty string"


@pytest.mark.parametrize("key", ["token", "rd_acess_token", "RD_ACCESS_TOKEN", "rd_token_file", "base-url"])
def test_unknown_key_is_refused_with_the_known_ones(tmp_path: Path, key: str) -> None:
    message = refused(tmp_path, f'[accounts.north]\nrd_access_token = "x"\n"{key}" = "{TOKEN}"\n')
    assert message.startswith(f"config file: [accounts.north] has unknown key(s) {key}; known: rd_access_token, ")
    known = message.partition("; known: ")[2].split(", ")
    credentials = ("rd_access_token", "rd_client_id", "rd_client_secret", "rd_refresh_token")
    ways = {f"{credential}{suffix}" for credential in credentials for suffix in ("", "_file", "_env")}
    assert set(known) == ways | {"requests_per_minute", "base_url"}


def test_several_unknown_keys_are_named_sorted(tmp_path: Path) -> None:
    message = refused(tmp_path, '[accounts.north]\nzz = 1\naa = 2\nrd_access_token = "x"\n')
    assert "[accounts.north] has unknown key(s) aa, zz; known: " in message


# -- names --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["north", "0", "a" * 63, "brand-a", "brand_b", "9lives", "a-", "x_-_y"],
)
def test_valid_names(tmp_path: Path, name: str) -> None:
    (account,) = load(tmp_path, table(f'"{name}"', rd_access_token="x")).accounts
    assert account.name == name


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("North", id="upper-case"),
        pytest.param("NORTH", id="all-upper"),
        pytest.param("no rth", id="space"),
        pytest.param(" north", id="leading-space"),
        pytest.param("a" * 64, id="too-long"),
        pytest.param("-north", id="leading-dash"),
        pytest.param("_north", id="leading-underscore"),
        pytest.param("", id="empty"),
        pytest.param("nörth", id="non-ascii"),
        pytest.param("north.south", id="dot"),
        pytest.param("north\\n", id="trailing-newline"),
        pytest.param("north/1", id="slash"),
    ],
)
def test_invalid_names(tmp_path: Path, name: str) -> None:
    message = refused(tmp_path, table(f'"{name}"', rd_access_token=TOKEN))
    shown = name.replace("\\n", "\n")
    assert message == (
        f"config file: account name {shown!r} is invalid: expected lower-case letters, digits, '-' or '_' "
        "(at most 63, starting with a letter or digit)"
    )


@pytest.mark.parametrize("name", ["dead_letter", "skip"])
def test_reserved_names(tmp_path: Path, name: str) -> None:
    message = refused(tmp_path, table(name, rd_access_token=TOKEN))
    assert message == (
        f"config file: account name {name!r} is reserved (mapping files use it in 'account:' cases): choose another"
    )


def test_default_may_be_a_table(tmp_path: Path) -> None:
    (default,) = load(tmp_path, table("default", rd_access_token=TOKEN)).accounts
    assert default.name == "default"


# -- credentials complete -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        pytest.param(("rd_client_id",), "rd_client_secret and rd_refresh_token", id="id"),
        pytest.param(("rd_client_secret",), "rd_client_id and rd_refresh_token", id="secret"),
        pytest.param(("rd_refresh_token",), "rd_client_id and rd_client_secret", id="refresh"),
        pytest.param(("rd_client_id", "rd_client_secret"), "rd_refresh_token", id="id+secret"),
        pytest.param(("rd_client_id", "rd_refresh_token"), "rd_client_secret", id="id+refresh"),
        pytest.param(("rd_client_secret", "rd_refresh_token"), "rd_client_id", id="secret+refresh"),
    ],
)
@pytest.mark.parametrize("with_token", [False, True], ids=["alone", "with-access-token"])
def test_incomplete_refresh_flow(tmp_path: Path, given: tuple[str, ...], missing: str, with_token: bool) -> None:
    keys = {key: FLOW[key] for key in given} | ({"rd_access_token": TOKEN} if with_token else {})
    message = refused(tmp_path, table("north", **keys))
    assert message == (
        f"RD refresh flow of [accounts.north] is incomplete: set {missing} too (in the table, as <key>_file or as "
        "<key>_env), or remove the rest of the flow"
    )


@pytest.mark.parametrize(
    "keys",
    [{}, {"requests_per_minute": 5}, {"base_url": "https://rd.example.com"}],
    ids=["empty", "budget-only", "base-url-only"],
)
def test_no_credentials(tmp_path: Path, keys: dict[str, Any]) -> None:
    message = refused(tmp_path, table("north", rd_access_token="x") + table("south", **keys))
    assert message == (
        "[accounts.south] has no RD credentials: set rd_access_token, or rd_client_id + rd_client_secret + "
        "rd_refresh_token (each in the table, as <key>_file or as <key>_env)"
    )


def test_refresh_flow_wins_over_a_static_token_when_both(tmp_path: Path) -> None:
    (north,) = load(tmp_path, table("north", rd_access_token=TOKEN, **FLOW)).accounts
    assert north.refresh_flow
    assert north.access_token == Secret(TOKEN)  # held (and redacted), only not used for the flow
    (static,) = load(tmp_path, table("north", rd_access_token=TOKEN)).accounts
    assert not static.refresh_flow


# -- requests_per_minute ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "parsed"), [("0", 0), ("1", 1), ("1000000", 1_000_000), ('"250"', 250), ("3e2", 300)])
def test_requests_per_minute_accepted(tmp_path: Path, raw: str, parsed: int) -> None:
    (north,) = load(tmp_path, f'[accounts.north]\nrd_access_token = "x"\nrequests_per_minute = {raw}\n').accounts
    assert north.requests_per_minute == parsed


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("-1", "-1"),
        ("1000001", "1000001"),
        ('"many"', "'many'"),
        ('""', "''"),
        ("true", "True"),
        ("12.5", "12.5"),
        ("inf", "inf"),
        ("nan", "nan"),
        ("[1]", "[1]"),
    ],
)
def test_requests_per_minute_bounds(tmp_path: Path, raw: str, shown: str) -> None:
    message = refused(
        tmp_path, f"[accounts.north]\nrd_access_token = {toml_value(TOKEN)}\nrequests_per_minute = {raw}\n"
    )
    assert message == f"[accounts.north] requests_per_minute={shown} is invalid: expected an integer from 0 to 1000000"


def test_requests_per_minute_default_is_rdc_rd_requests_per_minute(tmp_path: Path) -> None:
    text = table("north", rd_access_token="x") + table("south", rd_access_token="y", requests_per_minute=9)
    assert [a.requests_per_minute for a in load(tmp_path, text).accounts] == [120, 9]
    env = {"RDC_RD_REQUESTS_PER_MINUTE": "500"}
    assert [a.requests_per_minute for a in load(tmp_path, text, env).accounts] == [500, 9]
    in_file = "rd_requests_per_minute = 42\n" + text
    assert [a.requests_per_minute for a in load(tmp_path, in_file).accounts] == [42, 9]
    assert [a.requests_per_minute for a in load(tmp_path, in_file, env).accounts] == [500, 9]  # env over file


# -- base_url -----------------------------------------------------------------------------------------------


def test_base_url_default_is_rdc_rd_base_url(tmp_path: Path) -> None:
    text = table("north", rd_access_token="x") + table("south", rd_access_token="y", base_url="https://s.example/")
    assert [a.base_url for a in load(tmp_path, text).accounts] == ["https://api.rd.services", "https://s.example"]
    env = {"RDC_RD_BASE_URL": "https://rd.example.com/v2/"}
    assert [a.base_url for a in load(tmp_path, text, env).accounts] == [
        "https://rd.example.com/v2",
        "https://s.example",
    ]
    in_file = 'rd_base_url = "http://127.0.0.1:8765"\n' + text
    assert [a.base_url for a in load(tmp_path, in_file).accounts] == ["http://127.0.0.1:8765", "https://s.example"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"ftp://rd.example.com"', "='ftp://rd.example.com' is invalid: expected an http:// or https:// URL"),
        ('"rd.example.com"', "='rd.example.com' is invalid: expected an http:// or https:// URL"),
        ('""', " is empty: expected a non-empty string"),
        ("true", "=True is invalid: expected a string"),
        (
            f'"https://north:{TOKEN}@rd.example.com"',
            " is invalid: put credentials in their own settings, not in the URL",
        ),
    ],
)
def test_invalid_base_url(tmp_path: Path, raw: str, expected: str) -> None:
    message = refused(tmp_path, f'[accounts.north]\nrd_access_token = "x"\nbase_url = {raw}\n')
    assert message == "[accounts.north] base_url" + expected


@pytest.mark.parametrize(
    "url", ["http://rd.internal", "http://10.0.0.5:8765", "http://0.0.0.0", "http://localhost.example.com"]
)
def test_plain_http_base_url_refused_unless_allowed(tmp_path: Path, url: str) -> None:
    text = table("north", rd_access_token="x") + table("south", **FLOW, base_url=url)
    message = refused(tmp_path, text)
    assert message.startswith(f"[accounts.south] base_url={url} is plain http to a host that is not loopback: ")
    assert "the account's RD access token and client secret would travel unencrypted" in message
    assert "Use https://, or set RDC_ALLOW_INSECURE_HTTP=true" in message
    assert load(tmp_path, text, {"RDC_ALLOW_INSECURE_HTTP": "true"}).accounts[1].base_url == url
    assert load(tmp_path, "allow_insecure_http = true\n" + text).accounts[1].base_url == url


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "http://localhost", "http://[::1]:1", "https://rd.internal"])
def test_loopback_or_https_base_url_accepted(tmp_path: Path, url: str) -> None:
    (north,) = load(tmp_path, table("north", rd_access_token="x", base_url=url)).accounts
    assert north.base_url == url


# -- accounts must be tables --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["accounts = 3\n", 'accounts = ["north"]\n', 'accounts = "north"\n', "accounts = true\n"]
)
def test_accounts_not_a_table(tmp_path: Path, text: str) -> None:
    assert refused(tmp_path, text) == "config file: 'accounts' must be tables, one per account: [accounts.<name>]"


@pytest.mark.parametrize(
    "text",
    [f'[accounts]\nnorth = "{TOKEN}"\n', "accounts.north = 5\n", 'accounts = { north = ["x"] }\n'],
    ids=["value-in-accounts", "dotted-key", "inline-list"],
)
def test_an_account_not_a_table(tmp_path: Path, text: str) -> None:
    assert refused(tmp_path, text) == (
        "config file: [accounts.north] must be a table of the account's keys, not a value: write [accounts.north] "
        "on a line of its own and its keys below"
    )


def test_inline_and_dotted_tables_are_tables_too(tmp_path: Path) -> None:
    text = 'accounts = { north = { rd_access_token = "x" } }\n'
    assert [a.name for a in load(tmp_path, text).accounts] == ["north"]
    assert [a.name for a in load(tmp_path, 'accounts.south.rd_access_token = "y"\n').accounts] == ["south"]


# -- Settings: the account default, rd_accounts(), require_pipeline() ---------------------------------------


def test_rd_accounts_default_first_then_the_tables(tmp_path: Path) -> None:
    text = table("north", rd_access_token=TOKEN) + table("south", **FLOW)
    env = {**PIPELINE, **DEFAULT_RD, "RDC_RD_BASE_URL": "https://rd.example.com", "RDC_RD_REQUESTS_PER_MINUTE": "77"}
    s = load(tmp_path, text, env)
    assert [a.name for a in s.rd_accounts()] == ["default", "north", "south"]
    assert s.rd_accounts()[1:] == s.accounts
    assert s.default_account() == Account(
        "default",
        "https://rd.example.com",
        77,
        access_token=Secret("default-SECRET-tok"),
        token_file="/var/lib/rdc/token.json",
    )
    assert all(a.token_file is None for a in s.accounts)  # RDC_RD_TOKEN_FILE is the default account's only
    s.require_pipeline()


def test_default_account_from_the_refresh_flow() -> None:
    env = {"RDC_RD_CLIENT_ID": "app", "RDC_RD_CLIENT_SECRET": CLIENT_SECRET, "RDC_RD_REFRESH_TOKEN": REFRESH}
    default = load_settings({**env, "RDC_RD_TOKEN_FILE": "/tmp/t.json"}).default_account()
    assert default is not None and default.refresh_flow and default.token_file == "/tmp/t.json"
    assert default.client_secret == Secret(CLIENT_SECRET) and default.access_token is None


def test_no_default_account_without_rdc_rd_credentials(tmp_path: Path) -> None:
    text = table("north", rd_access_token=TOKEN)
    s = load(tmp_path, text, {**PIPELINE, "RDC_RD_TOKEN_FILE": "/tmp/t.json"})  # a token file is no credential
    assert s.default_account() is None
    assert s.rd_accounts() == s.accounts and [a.name for a in s.accounts] == ["north"]
    s.require_pipeline()  # the tables' credentials suffice


def test_default_table_alone_passes(tmp_path: Path) -> None:
    s = load(tmp_path, table("default", rd_access_token=TOKEN) + table("north", **FLOW), PIPELINE)
    s.require_pipeline()
    assert [a.name for a in s.rd_accounts()] == ["default", "north"]


@pytest.mark.parametrize(
    "rd",
    [
        {"RDC_RD_ACCESS_TOKEN": "default-SECRET-tok"},
        {"RDC_RD_CLIENT_ID": "a", "RDC_RD_CLIENT_SECRET": "b-SECRET", "RDC_RD_REFRESH_TOKEN": "c-SECRET"},
    ],
    ids=["static", "refresh-flow"],
)
def test_default_table_and_rdc_rd_credentials_refused(tmp_path: Path, rd: dict[str, str]) -> None:
    s = load(tmp_path, table("default", rd_access_token=TOKEN), {**PIPELINE, **rd})
    with pytest.raises(ConfigError) as info:
        s.require_pipeline()
    message = str(info.value)
    assert message == (
        "the account 'default' is defined twice: by the RDC_RD_* credentials and by [accounts.default]; keep one"
    )
    assert not any(secret in message for secret in (*SECRETS, "default-SECRET-tok", "b-SECRET", "c-SECRET"))


def test_no_tables_and_no_rdc_rd_credentials_refused() -> None:
    with pytest.raises(ConfigError, match=re.escape("or [accounts.<name>] tables in RDC_CONFIG_FILE")):
        load_settings(PIPELINE).require_pipeline()


# -- secrets: redacted, never shown -------------------------------------------------------------------------


def test_secret_values_hold_every_accounts_secrets(tmp_path: Path) -> None:
    text = table("north", rd_access_token_file=write(tmp_path, "tok", TOKEN + "\n")) + table(
        "south", rd_client_id="south-app", rd_client_secret_env="CS", rd_refresh_token=REFRESH
    )
    s = load(tmp_path, text, {**DEFAULT_RD, "CS": CLIENT_SECRET})
    values = s.secret_values()
    assert {TOKEN, CLIENT_SECRET, REFRESH, "default-SECRET-tok"} <= set(values)
    assert "south-app" not in values  # a client id is no secret
    line = f"refresh of south sent {CLIENT_SECRET} and {REFRESH}; north uses {TOKEN}, default default-SECRET-tok"
    redacted = Redactor(values).redact(line)
    assert not any(secret in redacted for secret in (*SECRETS, "default-SECRET-tok")), redacted
    assert "refresh of south sent" in redacted


def test_repr_and_str_never_show_a_secret(tmp_path: Path) -> None:
    text = table("north", rd_access_token=TOKEN, **FLOW, base_url="https://rd.example.com")
    s = load(tmp_path, text, DEFAULT_RD)
    (north,) = s.accounts
    default = s.default_account()
    shown = repr(s) + str(s) + repr(north) + str(north) + repr(default) + str(default) + repr(s.rd_accounts())
    assert not any(secret in shown for secret in (*SECRETS, "default-SECRET-tok")), shown
    assert "name='north'" in repr(north) and "north-app" in repr(north) and "https://rd.example.com" in repr(north)
    assert "Secret('***')" in repr(north) and "accounts=(Account(name='north'" in repr(s)


def test_account_secrets_false_reads_no_file_and_no_variable(tmp_path: Path) -> None:
    """`mapping check` needs the names only: the secrets' files and variables need not exist."""
    path = tmp_path / "rdc.toml"
    text = table("north", rd_access_token_file=str(tmp_path / "missing")) + table("south", rd_access_token_env="UNSET")
    path.write_text(text)
    s = load_settings({}, path, account_secrets=False)
    assert [a.name for a in s.rd_accounts()] == ["north", "south"]
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({}, path)


# -- properties ---------------------------------------------------------------------------------------------

_VALID_NAME = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True).filter(
    lambda n: n not in ("dead_letter", "skip")
)
#: str.strip() drops every Unicode blank, so a secret ends with anything else.
_SECRET = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=40).map(
    lambda s: "S3CRET" + s
)
_CLIENT_ID = st.from_regex(r"app-[a-z0-9 ]{0,20}", fullmatch=True).map(str.strip)  # no secret (a repr shows it)
_SOURCE = st.sampled_from(["inline", "file", "env"])


def _parse(
    tables: Any, env: Mapping[str, str] | None = None, files: Mapping[str, str] | None = None
) -> tuple[Account, ...]:
    """`parse_accounts` as `load_settings` calls it, over an environment and files of this test's own."""

    def read_file(path: Path) -> str:
        try:
            return (files or {})[str(path)]
        except KeyError:
            raise FileNotFoundError(path) from None

    return parse_accounts(
        tables,
        env or {},
        base_url="https://api.rd.services",
        requests_per_minute=120,
        parse_url=_PARSERS["rd_base_url"],
        parse_budget=_PARSERS["rd_requests_per_minute"],
        read_file=read_file,
    )


@settings(max_examples=200, deadline=None)
@given(names=st.lists(_VALID_NAME, min_size=1, max_size=5, unique=True))
def test_any_valid_names_round_trip_in_order(names: list[str]) -> None:
    accounts = _parse({name: {"rd_access_token": "x"} for name in names})
    assert [a.name for a in accounts] == names


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=70).filter(lambda n: not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", n)))
def test_any_other_name_is_refused_naming_it(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        _parse({name: {"rd_access_token": TOKEN}})
    assert repr(name) in str(info.value) and TOKEN not in str(info.value)


@settings(max_examples=200, deadline=None)
@given(
    values=st.fixed_dictionaries(
        {
            "rd_access_token": _SECRET,
            "rd_client_id": _CLIENT_ID,
            "rd_client_secret": _SECRET,
            "rd_refresh_token": _SECRET,
        }
    ),
    sources=st.fixed_dictionaries(
        {"rd_access_token": _SOURCE, "rd_client_id": _SOURCE, "rd_client_secret": _SOURCE, "rd_refresh_token": _SOURCE}
    ),
    trailing=st.sampled_from(["", "\n", "\r\n", " \n\n"]),
)
def test_any_secret_by_any_source_gives_the_same_account(
    values: dict[str, str], sources: dict[str, str], trailing: str
) -> None:
    table: dict[str, str] = {}
    env: dict[str, str] = {}
    files: dict[str, str] = {}
    for key, value in values.items():
        if sources[key] == "inline":
            table[key] = value
        elif sources[key] == "file":
            table[f"{key}_file"] = f"/run/secrets/{key}"
            files[f"/run/secrets/{key}"] = value + trailing
        else:
            table[f"{key}_env"] = f"RD_{key.upper()}"
            env[f"RD_{key.upper()}"] = value + trailing
    (account,) = _parse({"north": table}, env, files)
    assert account == Account(
        "north",
        "https://api.rd.services",
        120,
        access_token=Secret(values["rd_access_token"]),
        client_id=values["rd_client_id"],
        client_secret=Secret(values["rd_client_secret"]),
        refresh_token=Secret(values["rd_refresh_token"]),
    )
    assert set(account.secrets()) == {values["rd_access_token"], values["rd_client_secret"], values["rd_refresh_token"]}
    assert not any(values[k] in repr(account) for k in ("rd_access_token", "rd_client_secret", "rd_refresh_token"))


@settings(max_examples=200, deadline=None)
@given(
    secret=_SECRET,
    drop=st.sampled_from(["rd_client_id", "rd_client_secret", "rd_refresh_token"]),
    twice=st.sampled_from([("", "_file"), ("", "_env"), ("_file", "_env"), ("", "_file", "_env")]),
)
def test_errors_never_show_a_secret(secret: str, drop: str, twice: tuple[str, ...]) -> None:
    """An incomplete flow, or a credential given twice: the message names keys, never the values."""
    flow = {"rd_client_id": "app", "rd_client_secret": secret, "rd_refresh_token": secret}
    del flow[drop]
    given = {"": secret, "_file": "/s", "_env": "X"}
    for table in (flow, {f"rd_access_token{suffix}": given[suffix] for suffix in twice}):
        with pytest.raises(ConfigError) as info:
            _parse({"north": table}, {"X": secret}, {"/s": secret})
        assert secret not in str(info.value) and "[accounts.north]" in str(info.value)


def test_the_default_account_is_default_or_the_only_one() -> None:
    from connector.config.accounts import default_account_of

    assert default_account_of(["north", "default"]) == "default"
    assert default_account_of(["north"]) == "north"
    assert default_account_of(["north", "south"]) is None
    assert default_account_of([]) is None
