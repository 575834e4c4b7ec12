"""The bounded HTTP exchange without a network: the answer cap and the per-chunk deadline over
httpx.MockTransport, and which proxy the environment names (the deadline on real sockets is tested in
tests/integration/test_hostile_rd.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from connector.errors import ConfigError
from connector.rd.bounded_http import Answer, bounded_client, bounded_request, env_proxy


def _client(content: bytes | Iterator[bytes], status: int = 200) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(status, content=content)))


@pytest.mark.parametrize(
    ("size", "cap", "complete"),
    [pytest.param(10, 10, True, id="at-the-cap"), pytest.param(11, 10, False, id="one-over"), (0, 10, True)],
)
def test_the_cap(size: int, cap: int, complete: bool) -> None:
    answer = bounded_request(_client(b"x" * size), "POST", "http://rd.test/", timeout_s=5, max_bytes=cap)
    assert answer == Answer(200, answer.headers, b"x" * min(size, cap), complete)


def test_an_endless_answer_is_cut_at_the_cap() -> None:
    pulled = []

    def endless() -> Iterator[bytes]:
        while True:
            pulled.append(1)
            yield b"y" * 1000

    answer = bounded_request(_client(endless()), "GET", "http://rd.test/", timeout_s=5, max_bytes=2500)
    assert (len(answer.body), answer.complete, len(pulled)) == (2500, False, 3)


def test_a_slow_answer_times_out_after_the_deadline() -> None:
    def slow() -> Iterator[bytes]:
        while True:
            time.sleep(0.02)
            yield b"z"

    began = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        bounded_request(_client(slow()), "GET", "http://rd.test/", timeout_s=0.1, max_bytes=10**6)
    assert time.monotonic() - began >= 0.1


def test_the_excerpt_says_when_it_was_cut() -> None:
    assert Answer(400, httpx.Headers(), b"abc").excerpt() == "400 abc"
    assert Answer(400, httpx.Headers(), b"abc", complete=False).excerpt() == "400 abc [cut]"
    assert Answer(400, httpx.Headers(), b"a" * 3000).excerpt(5) == "400 aaaaa [cut]"


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_env_proxy(no_proxy_env: pytest.MonkeyPatch) -> None:
    assert env_proxy("https://api.rd.services") is None
    no_proxy_env.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    assert env_proxy("https://api.rd.services") == "http://proxy.corp:3128"
    assert env_proxy("http://api.rd.services") is None  # HTTP_PROXY is not set
    no_proxy_env.setenv("NO_PROXY", "rd.services")
    assert env_proxy("https://api.rd.services") is None


def test_a_socks_proxy_is_a_configuration_error(no_proxy_env: pytest.MonkeyPatch) -> None:
    no_proxy_env.setenv("ALL_PROXY", "socks5://proxy.corp:1080")
    with pytest.raises(ConfigError, match="NO_PROXY"):
        bounded_client(5, 1, "https://api.rd.services")
