"""The mock RD API over real HTTP on loopback: every rule, auth flow, fault, control endpoint and the CLI.

No Kafka broker needed. Each test gets its own server on a free port (starting one takes milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from connector.config import Secret
from connector.errors import AuthFatal
from connector.rd import contract
from connector.rd.auth import RefreshingToken
from connector.testing.mock_rd import FAULT_NAMES, MockAccount, MockRdServer, cli

BATCH = "/platform/events/batch"
SINGLE = "/platform/events"
TOKEN = "/auth/token"
AUTH = {"Authorization": "Bearer any-token"}
BAD_BODY = {
    "errors": {
        "error_type": "BAD_REQUEST",
        "error_message": "Could not parse the body of the request according to the provided Content-Type.",
    }
}
UNAUTHORIZED = {"errors": [{"error_type": "UNAUTHORIZED", "error_message": "Invalid token."}]}
EXPIRED = 'Bearer realm="https://api.rd.services/", error="expired_token", error_description="The access token expired"'

MakeServer = Callable[..., MockRdServer]


def conversion(i: int = 0) -> dict[str, Any]:
    return {
        "event_type": "CONVERSION",
        "event_family": "CDP",
        "payload": {"conversion_identifier": f"c{i}", "email": f"u{i}@x.com"},
    }


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    """Start MockRdServers with the given settings; all are stopped at teardown."""
    servers: list[MockRdServer] = []

    def make(**settings: Any) -> MockRdServer:
        server = MockRdServer(**settings).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def rd(make_server: MakeServer) -> MockRdServer:
    return make_server()


@pytest.fixture
def client(rd: MockRdServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rd.url, headers=AUTH, timeout=5) as c:
        yield c


def post_raw(client: httpx.Client, path: str, body: bytes, **headers: str) -> httpx.Response:
    return client.post(path, content=body, headers={"Content-Type": "application/json", **headers})


# --- success ------------------------------------------------------------------------------------------------


def test_batch_success_one_uuid_per_event_in_request_order(rd: MockRdServer, client: httpx.Client) -> None:
    events = [conversion(i) for i in range(5)]
    response = client.post(BATCH, json=events)
    assert response.status_code == 200
    body = response.json()
    uuids = [e["event_uuid"] for e in body["events"]]
    assert len(uuids) == 5 and len(set(uuids)) == 5 and body["event_batch_uuid"] not in uuids
    for text in [*uuids, body["event_batch_uuid"]]:  # RD's are version-4 UUIDs in canonical form
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    accepted = rd.accepted
    assert [a.event for a in accepted] == events
    assert [a.event_uuid for a in accepted] == uuids
    assert {a.event_batch_uuid for a in accepted} == {body["event_batch_uuid"]}
    assert [a.index for a in accepted] == list(range(5))


def test_single_event_endpoint(rd: MockRdServer, client: httpx.Client) -> None:
    response = client.post(SINGLE, json=conversion(), params={"event_type": "conversion"})
    assert response.status_code == 200
    assert set(response.json()) == {"event_uuid"}
    (accepted,) = rd.accepted
    assert accepted.event_uuid == response.json()["event_uuid"] and accepted.event_batch_uuid is None


def test_uuids_unique_across_batches(client: httpx.Client) -> None:
    seen = [e["event_uuid"] for _ in range(3) for e in client.post(BATCH, json=[conversion()] * 4).json()["events"]]
    assert len(set(seen)) == 12


# --- body cap -----------------------------------------------------------------------------------------------


def body_of_size(size: int) -> bytes:
    """A valid one-event batch whose compact JSON is exactly `size` bytes."""
    event = conversion()
    event["payload"]["name"] = ""
    padding = size - len(orjson.dumps([event]))
    event["payload"]["name"] = "x" * padding
    body = orjson.dumps([event])
    assert len(body) == size
    return body


def test_body_cap_is_200000_bytes(rd: MockRdServer, client: httpx.Client) -> None:
    assert post_raw(client, BATCH, body_of_size(200_000)).status_code == 200
    response = post_raw(client, BATCH, body_of_size(200_001))
    assert response.status_code == 413
    assert response.json()["errors"]["error_type"] == "REQUEST_ENTITY_TOO_LARGE"
    assert len(rd.accepted) == 1


def test_body_cap_is_configurable(make_server: MakeServer) -> None:
    rd = make_server(max_body_bytes=500)
    with httpx.Client(base_url=rd.url, headers=AUTH) as c:
        assert post_raw(c, BATCH, body_of_size(501)).status_code == 413
        assert post_raw(c, BATCH, body_of_size(500)).status_code == 200
        rd.configure(max_body_bytes=200_000)
        assert post_raw(c, BATCH, body_of_size(501)).status_code == 200


# --- validation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [BATCH, SINGLE, TOKEN])
@pytest.mark.parametrize("body", [b"[{", b"", b"not json", b"\xff\xfe"])
def test_malformed_json_is_bad_request(client: httpx.Client, path: str, body: bytes) -> None:
    response = post_raw(client, path, body)
    assert response.status_code == 400
    assert response.json() == BAD_BODY


@pytest.mark.parametrize(
    ("body", "error_type", "path"),
    [
        pytest.param(conversion(), "MUST_BE_ARRAY", "$.body", id="object-not-array"),
        pytest.param("events", "MUST_BE_ARRAY", "$.body", id="string-not-array"),
        pytest.param([], "TOO_SHORT", "$.body", id="empty-array"),
        pytest.param([conversion(), 7], "MUST_BE_OBJECT", "$.body[1]", id="item-not-object"),
        pytest.param(
            [{**conversion(), "event_family": "MKT"}], "INVALID_OPTION", "$.body[0].event_family", id="family"
        ),
        pytest.param(
            [{k: v for k, v in conversion().items() if k != "event_family"}],
            "CANNOT_BE_NULL",
            "$.body[0].event_family",
            id="family-missing",
        ),
        pytest.param(
            [conversion(), {k: v for k, v in conversion().items() if k != "payload"}],
            "CANNOT_BE_NULL",
            "$.body[1].payload",
            id="payload-missing",
        ),
        pytest.param([{**conversion(), "payload": [1]}], "MUST_BE_OBJECT", "$.body[0].payload", id="payload-list"),
        pytest.param(
            [{k: v for k, v in conversion().items() if k != "event_type"}],
            "CANNOT_BE_NULL",
            "$.body[0].event_type",
            id="type-missing",
        ),
    ],
)
def test_bad_envelopes(rd: MockRdServer, client: httpx.Client, body: Any, error_type: str, path: str) -> None:
    response = client.post(BATCH, json=body)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert isinstance(errors, list)
    assert [(e["error_type"], e["path"]) for e in errors] == [(error_type, path)]
    assert rd.accepted == []


@pytest.mark.parametrize("event_type", ["NOPE", "conversion", *sorted(contract.REMOVED_EVENT_TYPES)])
def test_unknown_and_removed_types_are_invalid_options(rd: MockRdServer, client: httpx.Client, event_type: str) -> None:
    response = client.post(BATCH, json=[conversion(), {**conversion(), "event_type": event_type}])
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "error_type": "INVALID_OPTION",
                "error_message": "Must be one of the valid options.",
                "validation_rules": {"valid_options": sorted(contract.EVENT_TYPES)},
                "path": "$.body[1].event_type",
            }
        ]
    }
    assert rd.accepted == []


def test_single_endpoint_envelope_path(client: httpx.Client) -> None:
    response = client.post(SINGLE, json={**conversion(), "event_type": "ORDER_PLACED"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "$.body.event_type"


def test_payload_errors_are_a_field_map_with_item_index(rd: MockRdServer, client: httpx.Client) -> None:
    bad = {"event_type": "OPPORTUNITY", "event_family": "CDP", "payload": {"funnel_name": "default"}}
    worse = {"event_type": "OPPORTUNITY", "event_family": "CDP", "payload": {"email": "x", "funnel_name": " "}}
    response = client.post(BATCH, json=[conversion(), bad, conversion(), worse])
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["email"] == [
        {
            "error_type": "CANNOT_BE_NULL",
            "error_message": "email cannot be null.",
            "path": "$.body[1].payload.email",
            "index": 1,
        },
        {
            "error_type": "INVALID_FORMAT",
            "error_message": "email is not a valid email.",
            "path": "$.body[3].payload.email",
            "index": 3,
        },
    ]
    assert [(e["error_type"], e["index"]) for e in errors["funnel_name"]] == [("CANNOT_BE_BLANK", 3)]
    assert rd.accepted == []


def test_single_endpoint_payload_errors(rd: MockRdServer, client: httpx.Client) -> None:
    response = client.post(SINGLE, json={**conversion(), "payload": {"conversion_identifier": "c"}})
    assert response.status_code == 400
    (error,) = response.json()["errors"]["email"]
    assert error == {
        "error_type": "CANNOT_BE_NULL",
        "error_message": "email cannot be null.",
        "path": "$.body.payload.email",
    }
    assert rd.accepted == []


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(client: httpx.Client, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.post(BATCH, content=orjson.dumps([conversion()]), headers=headers)
    assert response.status_code == 415
    assert response.json()["errors"]["error_type"] == "UNSUPPORTED_MEDIA_TYPE"


def test_content_type_with_charset_is_json(client: httpx.Client) -> None:
    response = post_raw(
        client, BATCH, orjson.dumps([conversion()]), **{"Content-Type": "Application/JSON; charset=utf-8"}
    )
    assert response.status_code == 200


def test_unknown_path_and_wrong_method(client: httpx.Client) -> None:
    response = client.post("/platform/contacts", json={})
    assert response.status_code == 404
    assert response.json()["errors"]["error_type"] == "RESOURCE_NOT_FOUND"
    response = client.get(BATCH)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


# --- auth ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Token abc", "Basic dXNlcjpwYXNz"])
def test_missing_or_malformed_token_is_401(rd: MockRdServer, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.post(rd.url + BATCH, json=[conversion()], headers=headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert "www-authenticate" not in response.headers


STRICT = {"strict_auth": True, "client_id": "cid", "client_secret": "sec", "refresh_tokens": ["rt-1", "rt-2"]}


def refresh(rd: MockRdServer, refresh_token: str, **creds: str) -> httpx.Response:
    body = {"client_id": "cid", "client_secret": "sec", "refresh_token": refresh_token, **creds}
    return httpx.post(rd.url + TOKEN, json=body)


def send_with(rd: MockRdServer, token: str) -> httpx.Response:
    return httpx.post(rd.url + BATCH, json=[conversion()], headers={"Authorization": f"Bearer {token}"})


def test_strict_mode_accepts_only_issued_tokens(make_server: MakeServer) -> None:
    rd = make_server(**STRICT)
    assert send_with(rd, "made-up").json() == UNAUTHORIZED
    issued = refresh(rd, "rt-1")
    assert issued.status_code == 200
    body = issued.json()
    assert set(body) == {"access_token", "expires_in", "refresh_token"}
    assert body["expires_in"] == 86400 and body["refresh_token"] == "rt-1"
    assert send_with(rd, body["access_token"]).status_code == 200
    assert refresh(rd, "rt-1").status_code == 200  # no rotation: the refresh token stays valid
    assert rd.stats()["token_refreshes"] == 2


@pytest.mark.parametrize(
    "creds", [{"client_id": "other"}, {"client_secret": "guess"}, {"client_id": ""}], ids=["id", "secret", "empty"]
)
def test_wrong_client_credentials(make_server: MakeServer, creds: dict[str, str]) -> None:
    rd = make_server(**STRICT)
    response = refresh(rd, "rt-1", **creds)
    assert response.status_code == 401
    assert response.json() == {
        "errors": [{"error_type": "ACCESS_DENIED", "error_message": "Wrong credentials provided."}]
    }
    assert rd.stats()["token_refreshes"] == 0


@pytest.mark.parametrize("refresh_token", ["rt-unknown", ""])
def test_unknown_refresh_token(make_server: MakeServer, refresh_token: str) -> None:
    rd = make_server(**STRICT)
    response = refresh(rd, refresh_token)
    assert response.status_code == 401
    assert response.json()["errors"][0] == {
        "error_type": "INVALID_REFRESH_TOKEN",
        "error_message": "The provided refresh token is invalid or was revoked",
    }


def test_refresh_token_rotation(make_server: MakeServer) -> None:
    rd = make_server(**STRICT, rotate_refresh_token=True)
    first = refresh(rd, "rt-1").json()
    assert first["refresh_token"] not in ("rt-1", "rt-2")
    assert refresh(rd, "rt-1").json()["errors"][0]["error_type"] == "INVALID_REFRESH_TOKEN"
    second = refresh(rd, first["refresh_token"]).json()
    assert refresh(rd, first["refresh_token"]).status_code == 401
    assert send_with(rd, first["access_token"]).status_code == 200  # access tokens survive rotation
    assert send_with(rd, second["access_token"]).status_code == 200
    assert refresh(rd, "rt-2").status_code == 200  # other configured refresh tokens are unaffected


def test_token_expiry(make_server: MakeServer) -> None:
    rd = make_server(**STRICT, token_ttl_s=0.2)
    body = refresh(rd, "rt-1").json()
    assert body["expires_in"] == 0.2
    assert send_with(rd, body["access_token"]).status_code == 200
    time.sleep(0.25)
    response = send_with(rd, body["access_token"])
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == EXPIRED
    assert response.json() == UNAUTHORIZED
    fresh = refresh(rd, "rt-1").json()["access_token"]
    assert send_with(rd, fresh).status_code == 200


def test_expire_tokens_hook_and_lenient_default_mode(rd: MockRdServer) -> None:
    body = refresh(rd, "anything").json()  # default mode: no credentials configured, any refresh token
    assert send_with(rd, body["access_token"]).status_code == 200
    assert httpx.post(rd.url + "/_mock/expire_tokens").status_code == 200
    assert send_with(rd, body["access_token"]).headers["www-authenticate"] == EXPIRED
    assert send_with(rd, "never-issued").status_code == 200  # default mode accepts unknown tokens
    rd.expire_access_tokens()


def test_token_endpoint_needs_json_object(rd: MockRdServer) -> None:
    assert httpx.post(rd.url + TOKEN, data={"client_id": "x"}).status_code == 415
    assert httpx.post(rd.url + TOKEN, json=["x"]).json() == BAD_BODY


# --- several RD accounts ------------------------------------------------------------------------------------

A_CREDS: dict[str, Any] = {"client_id": "id-a", "client_secret": "secret-a"}  # Any: also **-ed into MockAccount
B_CREDS: dict[str, Any] = {"client_id": "id-b", "client_secret": "secret-b"}
INVALID_REFRESH = {
    "errors": [
        {"error_type": "INVALID_REFRESH_TOKEN", "error_message": "The provided refresh token is invalid or was revoked"}
    ]
}
ACCESS_DENIED = {"errors": [{"error_type": "ACCESS_DENIED", "error_message": "Wrong credentials provided."}]}


def two_accounts(**b: Any) -> dict[str, MockAccount]:
    """Account "a" accepts only rt-a; account "b" any refresh token no other account owns, and `b` changes."""
    return {
        "a": MockAccount(**A_CREDS, refresh_tokens=("rt-a",)),
        "b": MockAccount(**{**B_CREDS, **b}),
    }


def refresh_as(rd: MockRdServer, creds: dict[str, Any], refresh_token: str) -> httpx.Response:
    return httpx.post(rd.url + TOKEN, json={**creds, "refresh_token": refresh_token})


def token_of(rd: MockRdServer, creds: dict[str, Any], refresh_token: str) -> str:
    answer = refresh_as(rd, creds, refresh_token)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def test_each_account_refreshes_with_its_own_app_credentials(make_server: MakeServer) -> None:
    rd = make_server(accounts=two_accounts(), strict_auth=True)
    assert refresh_as(rd, A_CREDS, "rt-a").status_code == 200
    assert refresh_as(rd, B_CREDS, "rt-b").status_code == 200  # b takes any refresh token it does not know...
    assert refresh_as(rd, B_CREDS, "rt-a").json() == INVALID_REFRESH  # ...but not one of another account
    assert refresh_as(rd, {**A_CREDS, "client_secret": "secret-b"}, "rt-a").json() == ACCESS_DENIED
    assert refresh_as(rd, {**A_CREDS, "client_id": "id-c"}, "rt-a").json() == ACCESS_DENIED
    assert refresh_as(rd, A_CREDS, "rt-b").json() == INVALID_REFRESH
    tagged = [(r.status, r.account) for r in rd.requests]
    assert tagged == [(200, "a"), (200, "b"), (401, "b"), (401, None), (401, None), (401, "a")]
    stats = rd.stats()
    assert stats["token_refreshes"] == 2
    assert stats["accounts"]["a"]["token_refreshes"] == 1 and stats["accounts"]["a"]["requests"] == 2
    assert stats["accounts"]["b"]["requests_by_status"] == {"200": 1, "401": 1}


def test_tokens_are_accounted_to_their_account(make_server: MakeServer) -> None:
    rd = make_server(accounts=two_accounts(static_tokens=["static-b"]), strict_auth=True)
    token_a = token_of(rd, A_CREDS, "rt-a")
    headers = {"a": {"Authorization": f"Bearer {token_a}"}, "b": {"Authorization": "Bearer static-b"}}
    assert httpx.post(rd.url + BATCH, json=[conversion(0), conversion(1)], headers=headers["a"]).status_code == 200
    assert httpx.post(rd.url + BATCH, json=[conversion(2)], headers=headers["b"]).status_code == 200
    assert httpx.post(rd.url + SINGLE, json=conversion(3), headers=headers["a"]).status_code == 200
    assert send_with(rd, "made-up").json() == UNAUTHORIZED  # strict: a token no account issued
    assert [(e.account, e.event) for e in rd.accepted] == [
        ("a", conversion(0)),
        ("a", conversion(1)),
        ("b", conversion(2)),
        ("a", conversion(3)),
    ]
    assert [e.event for e in rd.accepted_for("b")] == [conversion(2)] and len(rd.accepted_for("a")) == 3
    assert rd.accepted_for(None) == []
    assert [r.account for r in rd.requests] == ["a", "a", "b", "a", None]
    assert httpx.get(rd.url + "/_mock/events", params={"since": 2}).json()["events"][0]["account"] == "b"
    assert httpx.get(rd.url + "/_mock/requests").json()["requests"][0]["account"] == "a"
    accounts = httpx.get(rd.url + "/_mock/stats").json()["accounts"]
    assert (accounts["a"]["accepted_events"], accounts["a"]["batches"], accounts["a"]["requests"]) == (3, 1, 3)
    assert (accounts["b"]["accepted_events"], accounts["b"]["batches"], accounts["b"]["requests"]) == (1, 1, 1)
    rd.expire_access_tokens()  # an expired token still names its account; static tokens do not expire
    assert send_with(rd, token_a).headers["www-authenticate"] == EXPIRED and rd.requests[-1].account == "a"
    assert send_with(rd, "static-b").status_code == 200


def test_without_accounts_nothing_is_named(rd: MockRdServer, client: httpx.Client) -> None:
    client.post(BATCH, json=[conversion()])
    refresh(rd, "rt")
    assert rd.accepted[0].account is None and {r.account for r in rd.requests} == {None}
    assert rd.stats()["accounts"] == {} and rd.accounts == {}
    with pytest.raises(ValueError, match="unknown accounts"):
        rd.configure_account("a", refuse_refresh=True)


def test_per_account_rate_windows_are_independent(make_server: MakeServer) -> None:
    rd = make_server(accounts=two_accounts(static_tokens=("static-b",)), rate_limit_per_s=2)
    token_a = token_of(rd, A_CREDS, "rt-a")
    assert [send_with(rd, token_a).status_code for _ in range(3)] == [200, 200, 429]  # a at its limit...
    assert [send_with(rd, "static-b").status_code for _ in range(2)] == [200, 200]  # ...b has its own window
    assert send_with(rd, "static-b").status_code == 429
    assert send_with(rd, "unknown").status_code == 200  # lenient mode: unknown tokens have a window of their own
    stats = rd.stats()["accounts"]
    assert stats["a"]["rate_limited"] == 1 and stats["a"]["requests_by_status"] == {"200": 3, "429": 1}
    assert stats["b"]["rate_limited"] == 1 and stats["b"]["accepted_events"] == 2
    rd.configure_account("b", rate_limit_per_s=4)  # an account's own limit overrides the global one
    assert send_with(rd, token_a).status_code == 429  # a fresh window for b only: a's is still the one it filled
    assert [send_with(rd, "static-b").status_code for _ in range(5)] == [200] * 4 + [429]


def test_an_accounts_own_rate_limit_applies_without_a_global_one(make_server: MakeServer) -> None:
    rd = make_server(accounts=two_accounts(static_tokens=("static-b",), rate_limit_per_s=1))
    token_a = token_of(rd, A_CREDS, "rt-a")
    assert [send_with(rd, "static-b").status_code for _ in range(2)] == [200, 429]
    assert [send_with(rd, token_a).status_code for _ in range(3)] == [200] * 3


def test_refuse_refresh_on_one_account_leaves_the_other_working(make_server: MakeServer) -> None:
    rd = make_server(accounts=two_accounts(), strict_auth=True)
    token_a = token_of(rd, A_CREDS, "rt-a")
    changed = rd.configure_account("a", refuse_refresh=True)  # mid-run
    assert changed.refuse_refresh and rd.accounts["a"].refuse_refresh and not rd.accounts["b"].refuse_refresh
    assert refresh_as(rd, A_CREDS, "rt-a").json() == INVALID_REFRESH
    assert refresh_as(rd, {**A_CREDS, "client_secret": "x"}, "rt-a").json() == ACCESS_DENIED  # credentials first
    assert send_with(rd, token_a).status_code == 200  # issued access tokens stay valid
    assert send_with(rd, token_of(rd, B_CREDS, "rt-b")).status_code == 200
    assert rd.stats()["accounts"]["a"]["requests_by_status"] == {"200": 2, "401": 1}  # ACCESS_DENIED names none
    rd.reset()  # restores the start-up account settings
    assert refresh_as(rd, A_CREDS, "rt-a").status_code == 200


def test_the_connectors_refresh_reads_a_refused_account_as_rds_invalid_refresh_token(make_server: MakeServer) -> None:
    rd = make_server(accounts=two_accounts(refuse_refresh=True), strict_auth=True)
    with httpx.Client() as http:
        tokens_a = RefreshingToken(http, rd.url, "id-a", Secret("secret-a"), Secret("rt-a"))
        tokens_b = RefreshingToken(http, rd.url, "id-b", Secret("secret-b"), Secret("rt-b"))
        assert send_with(rd, tokens_a.token().reveal()).status_code == 200
        with pytest.raises(AuthFatal, match="INVALID_REFRESH_TOKEN"):
            tokens_b.token()


def test_accounts_over_http(make_server: MakeServer) -> None:
    rd = make_server(accounts=two_accounts(), strict_auth=True)
    listed = httpx.get(rd.url + "/_mock/accounts").json()
    assert listed == {
        "a": {"client_id": "id-a", "refuse_refresh": False, "rate_limit_per_s": None},
        "b": {"client_id": "id-b", "refuse_refresh": False, "rate_limit_per_s": None},
    }
    assert "secret" not in httpx.get(rd.url + "/_mock/accounts").text
    changed = httpx.post(rd.url + "/_mock/accounts", json={"b": {"refuse_refresh": True, "rate_limit_per_s": 3}})
    assert changed.status_code == 200 and changed.json()["b"]["rate_limit_per_s"] == 3
    assert refresh_as(rd, B_CREDS, "rt-b").json() == INVALID_REFRESH
    assert refresh_as(rd, A_CREDS, "rt-a").status_code == 200
    bad_bodies: list[Any] = [
        {"c": {}},
        {"a": {"nope": 1}},
        {"a": {"rate_limit_per_s": 0}},
        {"a": 1},
        [1],
        {"b": {"client_id": "id-a"}},
    ]
    for bad in bad_bodies:
        assert httpx.post(rd.url + "/_mock/accounts", json=bad).status_code == 400, bad
    both = {"a": {"refuse_refresh": True}, "b": {"nope": 1}}  # all or nothing
    assert httpx.post(rd.url + "/_mock/accounts", json=both).status_code == 400
    assert not rd.accounts["a"].refuse_refresh


def test_rotation_per_account(make_server: MakeServer) -> None:
    rd = make_server(accounts=two_accounts(refresh_tokens=("rt-b",)), strict_auth=True, rotate_refresh_token=True)
    first_a = refresh_as(rd, A_CREDS, "rt-a").json()
    assert refresh_as(rd, A_CREDS, "rt-a").json() == INVALID_REFRESH  # spent
    assert refresh_as(rd, B_CREDS, first_a["refresh_token"]).json() == INVALID_REFRESH  # a's, not b's
    first_b = refresh_as(rd, B_CREDS, "rt-b").json()  # b's own token was not touched by a's rotation
    second_a = refresh_as(rd, A_CREDS, first_a["refresh_token"]).json()
    second_b = refresh_as(rd, B_CREDS, first_b["refresh_token"]).json()
    assert len({first_a["refresh_token"], second_a["refresh_token"], first_b["refresh_token"]}) == 3
    for answer, account in ((first_a, "a"), (second_a, "a"), (first_b, "b"), (second_b, "b")):
        send_with(rd, answer["access_token"])
        assert rd.requests[-1].status == 200 and rd.requests[-1].account == account
    rd.configure_account("a", client_secret="secret-a2")  # RD rotates an app's secret: rotated tokens stay a's
    assert refresh_as(rd, A_CREDS, second_a["refresh_token"]).json() == ACCESS_DENIED
    assert refresh_as(rd, {**A_CREDS, "client_secret": "secret-a2"}, second_a["refresh_token"]).status_code == 200
    assert rd.stats()["accounts"]["a"]["token_refreshes"] == 3 and rd.stats()["accounts"]["b"]["token_refreshes"] == 2


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"client_id": ""}, "client_id"),
        ({"client_secret": None}, "client_secret"),
        ({"refresh_tokens": ("",)}, "refresh_tokens"),
        ({"static_tokens": None}, "static_tokens"),
        ({"refuse_refresh": 1}, "refuse_refresh"),
        ({"rate_limit_per_s": 0}, "rate_limit_per_s"),
    ],
)
def test_bad_account_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MockAccount(**{**A_CREDS, **settings})


def test_accounts_must_not_share_an_app_or_a_token_nor_mix_with_the_single_accounts_settings() -> None:
    same_id = {"a": MockAccount(**A_CREDS), "b": MockAccount("id-a", "other")}
    with pytest.raises(ValueError, match="same client_id"):
        MockRdServer(accounts=same_id)
    same_token = {"a": MockAccount(**A_CREDS, static_tokens=("t",)), "b": MockAccount(**B_CREDS, static_tokens=("t",))}
    with pytest.raises(ValueError, match="same static token"):
        MockRdServer(accounts=same_token)
    with pytest.raises(ValueError, match="not client_id"):
        MockRdServer(accounts=two_accounts(), client_id="cid")
    with pytest.raises(ValueError, match="unknown account settings"):
        MockAccount.from_json({**A_CREDS, "secret": "x"})
    assert MockAccount.from_json({**A_CREDS, "refresh_tokens": ["r"]}).refresh_tokens == ("r",)


# --- faults -------------------------------------------------------------------------------------------------


def test_latency_delays_without_blocking_other_connections(make_server: MakeServer) -> None:
    rd = make_server(latency_ms=300)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=rd.url, headers=AUTH) as c:
            responses = await asyncio.gather(*(c.post(BATCH, json=[conversion()]) for _ in range(8)))
        return [r.status_code for r in responses]

    start = time.perf_counter()
    assert asyncio.run(burst()) == [200] * 8
    elapsed = time.perf_counter() - start
    assert 0.3 <= elapsed < 1.0  # 8 concurrent requests overlap their sleeps
    start = time.perf_counter()
    assert httpx.post(rd.url + "/_mock/reset").status_code == 200  # control plane is never delayed
    assert time.perf_counter() - start < 0.3


def test_rate_limit_retry_after(make_server: MakeServer) -> None:
    rd = make_server(rate_limit_per_s=2)
    with httpx.Client(base_url=rd.url, headers=AUTH) as c:
        statuses = [c.post(BATCH, json=[conversion()]) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 429, 429]
    assert statuses[2].headers["retry-after"] == "1"
    assert statuses[2].json() == {"message": "API rate limit exceeded"}
    assert len(rd.accepted) == 2


def test_rate_limit_quotas_header(make_server: MakeServer) -> None:
    rd = make_server(rate_limit_per_s=1, rate_limit_header="quotas")
    with httpx.Client(base_url=rd.url, headers=AUTH) as c:
        assert c.post(BATCH, json=[conversion()]).status_code == 200
        limited = c.post(BATCH, json=[conversion()])
    assert limited.status_code == 429
    assert limited.headers["retry-after-quotas"] == "1"
    assert limited.headers["ratelimit-limit-quotas"] == "1"
    assert "retry-after" not in limited.headers
    assert limited.json() == {"message": "API rate limit exceeded"}


def test_rate_limit_remaining_time_body(make_server: MakeServer) -> None:
    rd = make_server(rate_limit_per_s=1, rate_limit_header="remaining_time")
    with httpx.Client(base_url=rd.url, headers=AUTH) as c:
        c.post(BATCH, json=[conversion()])
        body = c.post(BATCH, json=[conversion()]).json()
    assert body["remaining_time"] == 1 and body["max"] == 1 and "rate limit exceeded" in body["error"]


def test_rate_limit_window_reopens(make_server: MakeServer) -> None:
    rd = make_server(rate_limit_per_s=1)
    with httpx.Client(base_url=rd.url, headers=AUTH) as c:
        assert c.post(BATCH, json=[conversion()]).status_code == 200
        assert c.post(BATCH, json=[conversion()]).status_code == 429
        time.sleep(1.0)
        assert c.post(BATCH, json=[conversion()]).status_code == 200


def test_5xx_ratio_one_always_fails_zero_never(make_server: MakeServer) -> None:
    rd = make_server(error_5xx_ratio=1.0, seed=3)
    with httpx.Client(base_url=rd.url, headers=AUTH) as c:
        failing = [c.post(BATCH, json=[conversion()]) for _ in range(10)]
        assert {r.status_code for r in failing} <= {500, 503}
        assert any(r.status_code == 500 for r in failing)
        r500 = next(r for r in failing if r.status_code == 500)
        assert r500.json() == {
            "errors": {"error_type": "INTERNAL_SERVER_ERROR", "error_message": "Service temporarily unavailable"}
        }
        rd.configure(error_5xx_ratio=0.0)
        assert {c.post(BATCH, json=[conversion()]).status_code for _ in range(10)} == {200}
    assert len(rd.accepted) == 10


def test_seeded_faults_are_reproducible(make_server: MakeServer) -> None:
    def statuses(rd: MockRdServer) -> list[int]:
        with httpx.Client(base_url=rd.url, headers=AUTH) as c:
            return [c.post(BATCH, json=[conversion()]).status_code for _ in range(20)]

    first = statuses(make_server(error_5xx_ratio=0.5, seed=42))
    second = statuses(make_server(error_5xx_ratio=0.5, seed=42))
    assert first == second
    assert 200 in first and set(first) - {200}  # a mix, not all-or-nothing


def test_drop_closes_connection_without_answer(make_server: MakeServer) -> None:
    rd = make_server(drop_ratio=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(rd.url + BATCH, json=[conversion()], headers=AUTH)
    assert [(r.path, r.status) for r in rd.requests] == [(BATCH, 0)]
    assert rd.stats()["dropped"] == 1 and rd.accepted == []
    assert refresh(rd, "rt").status_code == 200  # faults do not touch the auth endpoint


def test_faults_do_not_apply_to_token_endpoint(make_server: MakeServer) -> None:
    rd = make_server(error_5xx_ratio=1.0, rate_limit_per_s=1, latency_ms=500)
    start = time.perf_counter()
    assert [refresh(rd, "rt").status_code for _ in range(3)] == [200, 200, 200]
    assert time.perf_counter() - start < 0.5


def test_runtime_reconfiguration_over_http(rd: MockRdServer, client: httpx.Client) -> None:
    answer = client.post("/_mock/config", json={"error_5xx_ratio": 1, "seed": 1})
    assert answer.status_code == 200 and answer.json()["error_5xx_ratio"] == 1
    assert client.post(BATCH, json=[conversion()]).status_code in (500, 503)
    client.post("/_mock/config", json={"error_5xx_ratio": 0, "rate_limit_per_s": 1})
    assert client.get("/_mock/config").json()["rate_limit_per_s"] == 1
    assert [client.post(BATCH, json=[conversion()]).status_code for _ in range(2)] == [200, 429]
    assert rd.faults.rate_limit_per_s == 1
    client.post("/_mock/config", json={"rate_limit_per_s": 0})
    assert client.post(BATCH, json=[conversion()]).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"nope": 1},
        {"error_5xx_ratio": 2},
        {"drop_ratio": "0.5"},
        {"latency_ms": -1},
        {"strict_auth": 1},
        {"rate_limit_header": "x-ratelimit"},
        {"max_body_bytes": 0},
        {"token_ttl_s": 0},
        [1],
    ],
)
def test_bad_runtime_configuration_is_400(client: httpx.Client, body: Any) -> None:
    before = client.get("/_mock/config").json()
    response = client.post("/_mock/config", json=body)
    assert response.status_code == 400
    assert client.get("/_mock/config").json() == before


def test_python_configure_and_constructor_validate_names() -> None:
    with pytest.raises(ValueError, match="unknown mock settings"):
        MockRdServer(latency=5)
    with MockRdServer() as rd, pytest.raises(ValueError, match="drop_ratio"):
        rd.configure(drop_ratio=1.5)
    assert set(FAULT_NAMES) == {
        "latency_ms",
        "rate_limit_per_s",
        "rate_limit_header",
        "error_5xx_ratio",
        "drop_ratio",
        "token_ttl_s",
        "strict_auth",
        "rotate_refresh_token",
        "max_body_bytes",
        "seed",
        "reject_marker",
        "short_answer",
        "validate_payloads",
        "limited_contacts",
        "contact_limit_remaining_s",
        "daily_quota_s",
    }


def test_validate_payloads_off_checks_envelopes_only(rd: MockRdServer, client: httpx.Client) -> None:
    rd.configure(validate_payloads=False)
    missing_email = {"event_type": "CONVERSION", "event_family": "CDP", "payload": {"conversion_identifier": "c"}}
    assert client.post(BATCH, json=[missing_email]).status_code == 200
    assert client.post(BATCH, json=[{**missing_email, "event_family": "X"}]).status_code == 400


def test_reject_marker_refuses_the_marked_events_with_their_index(rd: MockRdServer, client: httpx.Client) -> None:
    rd.configure(reject_marker="POISON")
    events = [conversion(i) for i in range(4)]
    events[2]["payload"]["email"] = "POISON@x.com"
    response = client.post(BATCH, json=events)
    assert response.status_code == 400
    [error] = response.json()["errors"]["email"]
    assert (error["error_type"], error["index"], error["path"]) == ("INVALID", 2, "$.body[2].payload.email")
    assert rd.accepted == []
    assert client.post(BATCH, json=[conversion(0), conversion(1)]).status_code == 200


def test_limited_contacts_refuse_the_whole_batch_with_rds_lead_limiter_429(
    rd: MockRdServer, client: httpx.Client
) -> None:
    rd.configure(limited_contacts=["busy@x.com"], contact_limit_remaining_s=600)
    events = [conversion(i) for i in range(4)]
    events[2]["payload"]["email"] = "busy@x.com"
    response = client.post(BATCH, json=events)
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    body = response.json()
    assert "'lead_limiter' rate limit exceeded" in body["error"] and body["remaining_time"] == 600
    assert rd.accepted == []
    assert client.post(BATCH, json=[events[0], events[1], events[3]]).status_code == 200
    assert rd.faults.limited_contacts == ("busy@x.com",)


def test_a_spent_daily_quota_answers_every_events_call_the_gateways_429(rd: MockRdServer, client: httpx.Client) -> None:
    rd.configure(daily_quota_s=43_200)
    response = client.post(BATCH, json=[conversion()])
    assert response.status_code == 429
    assert response.headers["retry-after-quotas"] == "43200"
    assert response.json() == {"message": "API rate limit exceeded"}
    rd.configure(daily_quota_s=None)
    assert client.post(BATCH, json=[conversion()]).status_code == 200


def test_short_answer_returns_one_uuid_fewer(rd: MockRdServer, client: httpx.Client) -> None:
    rd.configure(short_answer=True)
    response = client.post(BATCH, json=[conversion(i) for i in range(3)])
    assert response.status_code == 200
    assert len(response.json()["events"]) == 2


# --- recording and control plane ----------------------------------------------------------------------------


def test_stats_over_http(rd: MockRdServer, client: httpx.Client) -> None:
    small = orjson.dumps([conversion()])
    big = orjson.dumps([conversion(i) for i in range(3)])
    post_raw(client, BATCH, small)
    post_raw(client, BATCH, big)
    post_raw(client, SINGLE, orjson.dumps(conversion()))
    post_raw(client, BATCH, b"{")
    refresh(rd, "rt")
    stats = client.get("/_mock/stats").json()
    assert stats["requests"] == 5
    assert stats["requests_by_status"] == {"200": 4, "400": 1}
    assert stats["accepted_events"] == 5 and stats["batches"] == 2
    assert stats["body_bytes_max"] == len(big)
    event_bodies = [len(small), len(big), len(orjson.dumps(conversion())), 1]
    assert stats["body_bytes_mean"] == pytest.approx(sum(event_bodies) / 4)
    assert stats["token_refreshes"] == 1
    assert "u0@x.com" not in client.get("/_mock/stats").text
    assert stats["config"]["max_body_bytes"] == 200_000


def test_requests_are_recorded_with_monotonic_time(rd: MockRdServer, client: httpx.Client) -> None:
    before = time.monotonic()
    client.post(BATCH, json=[conversion()])
    client.get("/nowhere")
    client.get("/_mock/stats")  # control plane is not recorded
    after = time.monotonic()
    recorded = rd.requests
    assert [(r.method, r.path, r.status) for r in recorded] == [("POST", BATCH, 200), ("GET", "/nowhere", 404)]
    assert recorded[0].body_bytes == len(orjson.dumps([conversion()]))
    assert before <= recorded[0].at <= recorded[1].at <= after
    listed = client.get("/_mock/requests", params={"since": 1}).json()
    assert listed["next"] == 2 and listed["requests"][0]["path"] == "/nowhere"


def test_events_endpoint_pages_by_index(client: httpx.Client) -> None:
    client.post(BATCH, json=[conversion(i) for i in range(3)])
    client.post(SINGLE, json=conversion(3))
    page = client.get("/_mock/events", params={"since": 1, "limit": 2}).json()
    assert [e["index"] for e in page["events"]] == [1, 2] and page["next"] == 3
    assert page["events"][0]["event"] == conversion(1)
    rest = client.get("/_mock/events", params={"since": page["next"]}).json()
    assert [e["event"] for e in rest["events"]] == [conversion(3)] and rest["events"][0]["event_batch_uuid"] is None
    assert client.get("/_mock/events", params={"since": 99}).json() == {"events": [], "next": 99}
    assert client.get("/_mock/events", params={"since": "x"}).status_code == 400


def test_reset_over_http_clears_recordings_and_restores_faults(make_server: MakeServer) -> None:
    rd = make_server(latency_ms=0)
    with httpx.Client(base_url=rd.url, headers=AUTH) as c:
        c.post(BATCH, json=[conversion()])
        token = refresh(rd, "rt").json()["access_token"]
        c.post("/_mock/config", json={"error_5xx_ratio": 1})
        assert c.post("/_mock/reset").json() == {"reset": True}
        assert rd.accepted == [] and rd.requests == []
        assert c.get("/_mock/stats").json()["requests"] == 0
        assert rd.faults.error_5xx_ratio == 0
        assert send_with(rd, token).status_code == 200  # issued tokens survive a reset


def test_python_reset(rd: MockRdServer, client: httpx.Client) -> None:
    client.post(BATCH, json=[conversion()])
    rd.configure(latency_ms=50)
    rd.reset()
    assert rd.accepted == [] and rd.stats()["accepted_events"] == 0 and rd.faults.latency_ms == 0


def test_readers_return_copies_and_wait_for_accepted(rd: MockRdServer, client: httpx.Client) -> None:
    rd.accepted.append(None)  # type: ignore[arg-type]
    assert rd.accepted == []
    sender = threading.Timer(0.05, lambda: httpx.post(rd.url + BATCH, json=[conversion()] * 3, headers=AUTH))
    sender.start()
    assert rd.wait_for_accepted(3, timeout=5)
    sender.join()
    assert not rd.wait_for_accepted(4, timeout=0.05)
    assert [e.index for e in rd.accepted_since(1)] == [1, 2]


# --- HTTP layer ---------------------------------------------------------------------------------------------


def raw_exchange(rd: MockRdServer, payload: bytes, responses: int) -> list[bytes]:
    """Send raw bytes on one socket and read `responses` answers (status line + headers + body)."""

    async def run() -> list[bytes]:
        reader, writer = await asyncio.open_connection(rd.host, rd.port)
        writer.write(payload)
        answers = []
        for _ in range(responses):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            answers.append(head + await reader.readexactly(length))
        writer.close()
        return answers

    return asyncio.run(run())


def request_bytes(body: bytes, extra: str = "") -> bytes:
    head = (
        f"POST {BATCH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def test_keep_alive_and_pipelining_on_one_connection(rd: MockRdServer) -> None:
    body = orjson.dumps([conversion()])
    answers = raw_exchange(rd, request_bytes(body) * 3, 3)
    assert all(a.startswith(b"HTTP/1.1 200 OK") and b"Connection: keep-alive" in a for a in answers)
    assert len(rd.accepted) == 3


def test_connection_close_is_honoured(rd: MockRdServer) -> None:
    (answer,) = raw_exchange(rd, request_bytes(orjson.dumps([conversion()]), "Connection: close\r\n"), 1)
    assert b"Connection: close" in answer


def test_chunked_body(rd: MockRdServer) -> None:
    body = orjson.dumps([conversion()])
    head = (
        f"POST {BATCH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:])) + b"0\r\n\r\n"
    (answer,) = raw_exchange(rd, head + chunks, 1)
    assert answer.startswith(b"HTTP/1.1 200")
    assert rd.accepted[0].event == conversion()


def test_garbage_request_line_gets_400(rd: MockRdServer) -> None:
    (answer,) = raw_exchange(rd, b"HELLO\r\n\r\n", 1)
    assert answer.startswith(b"HTTP/1.1 400")


# --- CLI ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _mock_cli(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python -m connector.testing.mock_rd --port 0 *args` and the URL it prints; killed if still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.testing.mock_rd", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("mock-rd listening on http://127.0.0.1:")
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_cli_serves_until_sigint() -> None:
    with _mock_cli("--latency-ms", "1", "--seed", "1") as (proc, url):
        assert httpx.post(url + BATCH, json=[conversion()], headers=AUTH).status_code == 200
        config = httpx.get(url + "/_mock/config").json()
        assert config["latency_ms"] == 1 and config["seed"] == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0


def test_cli_rejects_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--port", "0", "--drop-ratio", "2"]) == 2
    assert "drop_ratio" in capsys.readouterr().err


def test_cli_serves_named_accounts(capsys: pytest.CaptureFixture[str]) -> None:
    accounts = {"a": {**A_CREDS, "static_tokens": ["st-a"], "rate_limit_per_s": 1}, "b": B_CREDS}
    with _mock_cli("--accounts", orjson.dumps(accounts).decode()) as (proc, url):
        assert httpx.get(url + "/_mock/accounts").json()["a"] == {
            "client_id": "id-a",
            "refuse_refresh": False,
            "rate_limit_per_s": 1,
        }
        assert httpx.post(url + BATCH, json=[conversion()], headers={"Authorization": "Bearer st-a"}).status_code == 200
        assert httpx.get(url + "/_mock/stats").json()["accounts"]["a"]["accepted_events"] == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
    with pytest.raises(SystemExit):  # argparse: exit 2 and the reason
        cli(["--port", "0", "--accounts", '{"a": {"client_id": "x"}}'])
    assert "client_secret" in capsys.readouterr().err
    assert cli(["--port", "0", "--accounts", orjson.dumps(accounts).decode(), "--client-id", "x"]) == 2


def test_oversized_head_gets_431(rd: MockRdServer) -> None:
    huge = f"GET /_mock/stats HTTP/1.1\r\nX-Pad: {'a' * 70_000}\r\n\r\n".encode()
    (answer,) = raw_exchange(rd, huge, 1)
    assert answer.startswith(b"HTTP/1.1 431")
