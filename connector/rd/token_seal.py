"""Sealing of the token store's records: AES-256-GCM under a key derived from a passphrase, bound to its
record key.

Guarantees:
- `Sealer.seal(record_key, plaintext)` returns `VERSION || nonce(12) || ciphertext+tag(16)`; the plaintext
  never appears in it. A fresh random nonce per call.
- The AES key is HKDF-SHA256(passphrase, salt=`SALT`, info=account name): replicas with the same passphrase
  and account derive the same key; another account (or passphrase) derives another.
- The record key is the AAD: a value copied under another record key (another account, another RD app)
  does not open.
- `Sealer.open` raises `SealError` for anything that is not a value this passphrase sealed for this
  record key (wrong passphrase, tampered, truncated, unknown version, foreign); it never raises anything
  else and its message holds no secret.
- `record_key(account, client_id)` is `"<account>:<12 hex of sha256(client_id)>"` (utf-8): not secret, and
  two RD apps whose accounts share a name do not collide.
"""

from __future__ import annotations

import hashlib
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from connector.config import Secret

__all__ = ["NONCE_BYTES", "SALT", "VERSION", "SealError", "Sealer", "client_fingerprint", "derive_key", "record_key"]

#: The envelope's first byte; a value with another first byte is not opened.
VERSION: Final = 1
NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
#: HKDF salt: fixed, so that every replica derives the same key from the same passphrase.
SALT: Final = b"rd-connector token store v1"


class SealError(ValueError):
    """A value that does not open under this sealer (wrong key, tampered, truncated, foreign)."""


def client_fingerprint(client_id: str) -> str:
    """12 hex digits of sha256(client_id): names the RD app in a record key without spelling it out."""
    return hashlib.sha256(client_id.encode("utf-8")).hexdigest()[:12]


def record_key(account: str, client_id: str) -> bytes:
    """The token store's record key of `account` with the RD app `client_id`."""
    return f"{account}:{client_fingerprint(client_id)}".encode()


def derive_key(passphrase: Secret, account: str) -> bytes:
    """The 32-byte AES key of `account` for `passphrase` (HKDF-SHA256, salt `SALT`, info = account name)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=account.encode("utf-8"))
    return hkdf.derive(passphrase.reveal().encode("utf-8"))


class Sealer:
    """Seals and opens the values of one account. Thread-safe (immutable after construction)."""

    __slots__ = ("_aead",)

    def __init__(self, passphrase: Secret, account: str) -> None:
        if not passphrase:
            raise ValueError("the token store needs a non-empty passphrase")
        self._aead = AESGCM(derive_key(passphrase, account))

    def __repr__(self) -> str:
        return "Sealer(***)"

    def seal(self, key: bytes, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return bytes([VERSION]) + nonce + self._aead.encrypt(nonce, plaintext, key)

    def open(self, key: bytes, value: bytes) -> bytes:
        if len(value) < 1 + NONCE_BYTES + _TAG_BYTES:
            raise SealError(f"value of {len(value)} bytes is too short to be sealed")
        if value[0] != VERSION:
            raise SealError(f"unknown envelope version {value[0]}")
        nonce, ciphertext = value[1 : 1 + NONCE_BYTES], value[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, key)
        except InvalidTag as exc:
            raise SealError("does not open: another passphrase, another record key, or tampered") from exc
