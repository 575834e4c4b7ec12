"""RD's refusals of a token refresh: which error types an answer names, and what they mean for the operator,
in the settings of the account concerned (RDC_RD_* for `default`, the `[accounts.<name>]` keys otherwise)."""

from __future__ import annotations

import json
from typing import Any

from connector.rd.bounded_http import Answer

__all__ = ["refusal_kinds", "refusal_message"]


def refusal_kinds(response: Answer) -> set[Any]:
    """The `error_type`s of a refusal (RD answers an error list or an error object)."""
    try:
        errors = json.loads(response.body).get("errors")
    except (ValueError, AttributeError):
        errors = None
    kinds = {e.get("error_type") for e in errors if isinstance(e, dict)} if isinstance(errors, list) else set()
    if isinstance(errors, dict):
        kinds.add(errors.get("error_type"))
    return kinds


def refusal_message(response: Answer, account: str = "default") -> str:
    """What RD's refusal means and which settings to fix (the account's own keys for a named account). The
    error type is not written `NAME: value`: the log redactor would take the words after it for a token."""
    kinds = refusal_kinds(response)
    named = account != "default"
    where = f" of account {account}" if named else ""
    refresh = f"rd_refresh_token of [accounts.{account}]" if named else "RDC_RD_REFRESH_TOKEN"
    app = (
        f"rd_client_id and rd_client_secret of [accounts.{account}]"
        if named
        else "RDC_RD_CLIENT_ID and RDC_RD_CLIENT_SECRET"
    )
    if "INVALID_REFRESH_TOKEN" in kinds:
        stale = (
            " (and, with the token store off, remove RDC_RD_TOKEN_FILE if it holds the old one)" if not named else ""
        )
        return (
            f"RD refused the refresh token{where} as INVALID_REFRESH_TOKEN (invalid or revoked). Authorise the app "
            f"again and set {refresh} to the new token{stale}"
        )
    if "ACCESS_DENIED" in kinds:
        return f"RD refused the app credentials{where} (ACCESS_DENIED): check {app}"
    return f"RD's token endpoint refused the refresh{where} with HTTP {response.status_code}: check {refresh} and {app}"
