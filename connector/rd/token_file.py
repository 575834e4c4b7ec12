"""RDC_RD_TOKEN_FILE: the newest (rotated) refresh token of the `default` account, kept across restarts of a
single instance without the token store. JSON `{"refresh_token": ...}`, written atomically (a temporary file in
the same directory, fsync, mode 0600, rename), read at start (it wins over RDC_RD_REFRESH_TOKEN)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from connector.config import Secret

__all__ = ["read_token_file", "token_file_problem", "write_token_file"]

_log = logging.getLogger("connector.rd.auth")  # the refresh flow's logger: its lines keep their name


def write_token_file(token_file: Path, refresh_token: str) -> None:
    """Write `refresh_token` to `token_file` atomically (missing directories created). Raises OSError."""
    directory = token_file.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".rdc-token-", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"refresh_token": refresh_token}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, token_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def token_file_problem(token_file: Path) -> str | None:
    """Why a rotated refresh token could not be written to `token_file` (None: it can, as far as a check
    without writing can tell)."""
    if token_file.is_dir():
        return "is a directory"
    directory = token_file.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent  # `write_token_file` creates the missing directories
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        return f"cannot be written: {directory} is not a writable directory"
    return None


def read_token_file(token_file: Path | None) -> Secret | None:
    """The refresh token kept in `token_file` (None: no file, or unreadable: logged)."""
    if token_file is None or not token_file.exists():
        return None
    try:
        value = json.loads(token_file.read_text())["refresh_token"]
    except (ValueError, KeyError, TypeError, OSError):
        _log.warning("token_file_unreadable path=%s (using RDC_RD_REFRESH_TOKEN)", token_file)
        return None
    return Secret(value) if isinstance(value, str) and value else None
