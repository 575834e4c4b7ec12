"""`rd-connector check`'s RD checks over an `httpx.MockTransport`: what they send (only `[]` to the batch
endpoint, through `RdClient`; the refresh through `RefreshingToken`) and how each answer is judged. The
same checks against a real broker, registry and mock RD are in tests/integration/test_check.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from connector.commands import check
from connector.commands.check import CheckResult, run_checks
from connector.config import load_settings
from connector.errors import ConfigError

BASE = "https://rd.test"
STATIC = {"RDC_RD_BASE_URL": BASE, "RDC_RD_ACCESS_TOKEN": "at-static-check-token"}


def _refresh_env(tmp_path: Path) -> dict[str, str]:
    return {
        "RDC_RD_BASE_URL": BASE,
        "RDC_RD_CLIENT_ID": "cid",
        "RDC_RD_CLIENT_SECRET": "cs-check-secret",
        "RDC_RD_REFRESH_TOKEN": "rt-check-refresh",
        "RDC_RD_TOKEN_FILE": str(tmp_path / "rd-token.json"),
    }


def _rd(
    env: dict[str, str], answer: Callable[[httpx.Request], httpx.Response]
) -> tuple[dict[str, CheckResult], list[httpx.Request]]:
    """The rd-token and rd-api results of `run_checks` against `answer`, and the requests it got."""
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return answer(request)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        results = run_checks(load_settings(env), timeout_s=2, http=http)
    by_name = {r.name: r for r in results}
    assert [by_name[n].status for n in ("brokers", "topics", "schema-registry")] == ["SKIP"] * 3
    return {n: by_name[n] for n in ("rd-token", "rd-api")}, requests


def _batch(status: int, body: bytes = b'{"errors": []}') -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, content=body)


def test_static_token_posts_only_the_empty_batch() -> None:
    results, requests = _rd(STATIC, _batch(400))
    assert results["rd-token"].status == "SKIP" and results["rd-token"].detail.startswith("static access token")
    assert results["rd-api"] == CheckResult(
        "PASS",
        "rd-api",
        f"token accepted: HTTP 400 to an empty batch (no event sent) from {BASE}/platform/events/batch",
    )
    [request] = requests
    assert (request.method, str(request.url), request.content) == ("POST", f"{BASE}/platform/events/batch", b"[]")
    assert request.headers["Authorization"] == "Bearer at-static-check-token"
    assert request.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("status", [200, 400, 422])
def test_an_answer_past_authentication_passes(status: int) -> None:
    assert _rd(STATIC, _batch(status))[0]["rd-api"].status == "PASS"


def test_401_403_and_unexpected_answers_fail_with_an_excerpt() -> None:
    refused = _rd(STATIC, _batch(401, b'{"errors":  {"error_type": "UNAUTHORIZED"}}'))[0]["rd-api"]
    assert refused.status == "FAIL"
    assert refused.detail == (
        f'RD refused the access token (HTTP 401 from {BASE}/platform/events/batch): {{"errors": {{"error_type": '
        '"UNAUTHORIZED"}}'
    )
    forbidden = _rd(STATIC, _batch(403, b"x" * 300))[0]["rd-api"]
    assert forbidden.detail == (
        f"HTTP 403 from {BASE}/platform/events/batch (forbidden: wrong account or missing permission): "
        + "x" * 200
        + "..."
    )
    assert "(unexpected answer)" in _rd(STATIC, _batch(302))[0]["rd-api"].detail


def test_rd_unreachable_fails_rd_api() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    result = _rd(STATIC, refuse)[0]["rd-api"]
    assert result.status == "FAIL" and result.detail.startswith(f"cannot reach {BASE}/platform/events/batch: ")


def test_refresh_flow_refreshes_once_then_probes_with_the_new_token(tmp_path: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            return httpx.Response(200, json={"access_token": "at-fresh", "expires_in": 86400, "refresh_token": "rt-2"})
        return httpx.Response(400, json={"errors": []})

    results, requests = _rd(_refresh_env(tmp_path), answer)
    assert results["rd-token"].status == "PASS", results
    assert results["rd-token"].detail.startswith(f"obtained an access token from {BASE}/auth/token; RD rotated")
    assert results["rd-api"].status == "PASS"
    assert [r.url.path for r in requests] == ["/auth/token", "/platform/events/batch"]
    assert json.loads(requests[0].content)["refresh_token"] == "rt-check-refresh"
    assert requests[1].content == b"[]" and requests[1].headers["Authorization"] == "Bearer at-fresh"
    assert json.loads((tmp_path / "rd-token.json").read_text()) == {"refresh_token": "rt-2"}


def test_refused_refresh_skips_rd_api(tmp_path: Path) -> None:
    body = {"errors": [{"error_type": "INVALID_REFRESH_TOKEN"}]}
    results, requests = _rd(_refresh_env(tmp_path), lambda request: httpx.Response(401, json=body))
    assert results["rd-token"].detail.startswith(
        f"RD refused the refresh credentials (HTTP 401 from {BASE}/auth/token)"
    )
    assert results["rd-api"] == CheckResult("SKIP", "rd-api", "no access token to call RD with")
    assert len(requests) == 1


def test_without_a_token_file_nothing_is_sent(tmp_path: Path) -> None:
    env = {k: v for k, v in _refresh_env(tmp_path).items() if k != "RDC_RD_TOKEN_FILE"}
    results, requests = _rd(env, _batch(400))
    assert results["rd-token"].detail.startswith("not refreshed: RDC_RD_TOKEN_FILE is not set")
    assert results["rd-api"].status == "SKIP" and requests == []


def test_an_rd_client_run_could_not_build_fails_rd_token(monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(*args: object) -> httpx.Client:
        raise ConfigError("the proxy socks5://... named by *_PROXY is not supported")

    monkeypatch.setattr(check, "bounded_client", unsupported)
    results = {r.name: r for r in run_checks(load_settings(STATIC), timeout_s=1)}
    assert results["rd-token"].status == "FAIL" and "socks5" in results["rd-token"].detail
    assert results["rd-api"].status == "SKIP"
