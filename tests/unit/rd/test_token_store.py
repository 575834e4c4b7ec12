"""The token store's sealing (token_seal.py, token_store.seal_tokens/open_tokens): round trip, what the
bytes hide, and every value that must not open (wrong key, tampered, moved to another account)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from connector.config import Secret
from connector.errors import ConnectorError
from connector.rd.token_seal import NONCE_BYTES, VERSION, Sealer, SealError, client_fingerprint, record_key
from connector.rd.token_store import KafkaTokenStore, StoredTokens, open_tokens, seal_tokens

REFRESH = "rt-SECRET-5d1e-refresh"
ACCESS = "at-SECRET-eyJhbGciOi-access"
PASS = Secret("cs-SECRET-passphrase")
KEY = record_key("default", "client-id-1")
TOKENS = StoredTokens(REFRESH, ACCESS, 1_800_000_000.5, 1_799_913_600.25, "w-1")


def test_record_key_names_account_and_a_fingerprint_of_the_client_id() -> None:
    fingerprint = client_fingerprint("client-id-1")
    assert f"default:{fingerprint}".encode() == KEY
    assert len(fingerprint) == 12 and int(fingerprint, 16) >= 0
    assert b"client-id-1" not in KEY
    assert record_key("default", "client-id-2") != KEY


def test_seal_open_round_trip() -> None:
    sealer = Sealer(PASS, "default")
    value = seal_tokens(sealer, KEY, TOKENS)
    assert open_tokens(sealer, KEY, value) == TOKENS
    # Another sealer with the same passphrase and account (another replica) opens it too.
    assert open_tokens(Sealer(PASS, "default"), KEY, value) == TOKENS


def test_round_trip_without_access_token() -> None:
    sealer = Sealer(PASS, "default")
    tokens = StoredTokens(REFRESH, None, 0.0, 5.0, "w")
    assert open_tokens(sealer, KEY, seal_tokens(sealer, KEY, tokens)) == tokens


def test_sealed_bytes_hide_the_tokens_and_use_a_fresh_nonce() -> None:
    sealer = Sealer(PASS, "default")
    first, second = seal_tokens(sealer, KEY, TOKENS), seal_tokens(sealer, KEY, TOKENS)
    for value in (first, second):
        assert value[0] == VERSION
        for secret in (REFRESH, ACCESS, "rt-SECRET", "at-SECRET", "refresh_token", PASS.reveal()):
            assert secret.encode() not in value
    assert first[1 : 1 + NONCE_BYTES] != second[1 : 1 + NONCE_BYTES]
    assert first != second


def test_wrong_passphrase_does_not_open() -> None:
    value = seal_tokens(Sealer(PASS, "default"), KEY, TOKENS)
    with pytest.raises(SealError):
        open_tokens(Sealer(Secret("another"), "default"), KEY, value)


def test_value_moved_to_another_account_does_not_open() -> None:
    """The record key is the AAD, and the account name the HKDF info: neither a copy under another key
    nor another account's sealer opens it."""
    sealer = Sealer(PASS, "default")
    value = seal_tokens(sealer, KEY, TOKENS)
    with pytest.raises(SealError):
        open_tokens(sealer, record_key("shop-b", "client-id-1"), value)
    with pytest.raises(SealError):
        open_tokens(sealer, record_key("default", "client-id-2"), value)
    other = record_key("shop-b", "client-id-1")
    with pytest.raises(SealError):
        open_tokens(Sealer(PASS, "shop-b"), other, value)


@pytest.mark.parametrize("position", [0, 1, NONCE_BYTES + 1, -1])
def test_tampered_values_do_not_open(position: int) -> None:
    sealer = Sealer(PASS, "default")
    value = bytearray(seal_tokens(sealer, KEY, TOKENS))
    value[position] ^= 0x01
    with pytest.raises(SealError):
        open_tokens(sealer, KEY, bytes(value))


@pytest.mark.parametrize("value", [b"", b"\x01", b"\x01" + b"0" * 20, b'{"refresh_token": "x"}', b"\x02" + b"0" * 40])
def test_foreign_values_do_not_open(value: bytes) -> None:
    with pytest.raises(SealError):
        open_tokens(Sealer(PASS, "default"), KEY, value)


def test_sealed_non_token_json_is_refused() -> None:
    sealer = Sealer(PASS, "default")
    for plain in (b"[]", b"not json", b'{"refresh_token": ""}', b'{"refresh_token": "x", "access_token": 3}'):
        with pytest.raises(SealError):
            open_tokens(sealer, KEY, sealer.seal(KEY, plain))


def test_reprs_show_no_secret() -> None:
    sealer = Sealer(PASS, "default")
    for text in (repr(TOKENS), str(TOKENS), repr(sealer)):
        assert "SECRET" not in text


def test_empty_passphrase_is_refused() -> None:
    with pytest.raises(ValueError):
        Sealer(Secret(""), "default")


# --- KafkaTokenStore without a broker (the round trips are in tests/integration/test_token_store.py) ------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def unreachable() -> Iterator[KafkaTokenStore]:
    store = KafkaTokenStore({"bootstrap.servers": f"127.0.0.1:{_closed_port()}", "log_level": "0"}, "rdc-tokens")
    yield store
    store.close()


def test_unreachable_broker_read_raises_connector_error(unreachable: KafkaTokenStore) -> None:
    with pytest.raises(ConnectorError, match="RDC_TOKEN_STORE_TOPIC=rdc-tokens"):
        unreachable.read(KEY, Sealer(PASS, "default"), timeout_s=0.5)


def test_unreachable_broker_publish_raises_connector_error(unreachable: KafkaTokenStore) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectorError, match="RDC_TOKEN_STORE_TOPIC=rdc-tokens"):
        unreachable.publish(KEY, seal_tokens(Sealer(PASS, "default"), KEY, TOKENS), timeout_s=0.5)
    assert time.monotonic() - started < 5


def test_unreachable_broker_ensure_topic_names_the_setting(unreachable: KafkaTokenStore) -> None:
    with pytest.raises(ConnectorError, match="RDC_TOKEN_STORE_TOPIC=rdc-tokens"):
        unreachable.ensure_topic(timeout_s=0.5)
