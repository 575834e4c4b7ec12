"""A mock RD Station Marketing API on loopback, faithful to ../shared/rd-api.md, for tests, demo and benchmarks.

Use::

    with MockRdServer(latency_ms=20, seed=1) as rd:      # listening on a free port, loop in a daemon thread
        httpx.post(f"{rd.url}/platform/events/batch", json=[...], headers={"Authorization": "Bearer x"})
        rd.configure(error_5xx_ratio=0.5)                # or POST /_mock/config {"error_5xx_ratio": 0.5}
        assert rd.accepted[0].event["event_type"] == "CONVERSION"

Several RD accounts, each with its own app credentials, tokens and rate window::

    accounts = {"a": MockAccount("id-a", "secret-a", refresh_tokens=("rt-a",)), "b": MockAccount("id-b", "secret-b")}
    with MockRdServer(accounts=accounts, strict_auth=True, rate_limit_per_s=2) as rd:
        ...                                              # refresh with each app's credentials, send with its token
        rd.configure_account("a", refuse_refresh=True)   # or POST /_mock/accounts {"a": {"refuse_refresh": true}}
        assert rd.accepted_for("b") and rd.stats()["accounts"]["b"]["rate_limited"] == 0

Endpoints: `POST /platform/events/batch`, `POST /platform/events`, `POST /auth/token` (RD's), and the
control plane `GET /_mock/stats`, `GET|POST /_mock/config`, `POST /_mock/reset`,
`GET /_mock/events?since=N[&limit=M]`, `GET /_mock/requests?since=N[&limit=M]`, `POST /_mock/expire_tokens`,
`GET|POST /_mock/accounts`.
Fault names (constructor keywords, CLI flags with dashes, /_mock/config keys): see `Faults`; account
settings (`accounts`, CLI `--accounts` JSON, /_mock/accounts): see `MockAccount`.
Modules: mock_rd_http (HTTP/1.1), mock_rd_app (routing, auth, faults), mock_rd_validation (RD's 400
bodies), mock_rd_state (settings, recordings), mock_rd_auth (credentials, tokens).

Measured here (benchmarks/mock_rd_throughput.py: mock in its own process, 2-core box, client in another
process, 16 keep-alive connections): 1-event batch (120 B) ~20,000 req/s with a raw-socket client, ~1,400
req/s with httpx.AsyncClient (the client is the bottleneck); ~190 KB batch (534 ECOMMERCE_ORDER_PAID
events) 75-100 req/s (~40,000-53,000 events/s), bound by `rd.contract.payload_errors` (~7 ms per batch).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import FrameType, TracebackType
from typing import Any

import orjson

from connector.testing.mock_rd_app import RdMockApp
from connector.testing.mock_rd_auth import MockAccount, TokenStore
from connector.testing.mock_rd_http import HttpServer
from connector.testing.mock_rd_state import (
    FAULT_NAMES,
    RATE_LIMIT_HEADERS,
    AcceptedEvent,
    Faults,
    RecordedRequest,
    Recorder,
)

__all__ = ["FAULT_NAMES", "AcceptedEvent", "Faults", "MockAccount", "MockRdServer", "RecordedRequest", "cli"]

_log = logging.getLogger(__name__)


class MockRdServer:
    """The mock RD API served from a daemon thread running its own event loop.

    `start()` returns once listening (`url`, `port` are then set); `stop()` closes every connection and
    joins the thread. Also a context manager. Readers (`accepted`, `requests`, `stats()`) return copies
    and are safe from any thread. `faults` are the `Faults` names (ValueError on unknown ones).

    Without `accounts` (None or empty) the mock is one RD account, unnamed, with `client_id`,
    `client_secret` and `refresh_tokens`. With `accounts` it is those RD accounts, by name (the three
    single-account arguments must then be None; ValueError otherwise, or when two accounts share a
    client_id or a token): recordings and `stats()["accounts"]` name the account of each request.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        refresh_tokens: Iterable[str] | None = None,
        accounts: Mapping[str, MockAccount] | None = None,
        **faults: Any,
    ) -> None:
        self.host = host
        self._requested_port = port
        tokens = TokenStore(client_id, client_secret, refresh_tokens, accounts)
        self._app = RdMockApp(Faults().updated(faults), tokens, Recorder(accounts or ()))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http: HttpServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL, e.g. "http://127.0.0.1:8765" (valid after `start`)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> MockRdServer:
        """Bind and serve in a background thread; returns once listening. Raises OSError if bind fails."""
        if self._thread is not None:
            raise RuntimeError("already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failure), name="mock-rd", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        _log.info("mock_rd listening url=%s", self.url)
        return self

    def stop(self) -> None:
        """Stop listening, close all connections, stop the loop and join its thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> MockRdServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._http = HttpServer(self._app.handle)
        try:
            loop.run_until_complete(self._http.start(self.host, self._requested_port))
        except BaseException as exc:
            failure.append(exc)
            loop.close()
            ready.set()
            return
        self.port = self._http.port
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            _cancel_pending(loop)
            loop.close()

    async def _shutdown(self) -> None:
        if self._http is not None:
            await self._http.close()
        asyncio.get_running_loop().call_soon(asyncio.get_running_loop().stop)

    # recordings and settings (any thread)

    @property
    def accepted(self) -> list[AcceptedEvent]:
        """Every accepted event since the last reset, in arrival order (a copy)."""
        return self._app.recorder.accepted()

    def accepted_since(self, index: int) -> list[AcceptedEvent]:
        """Accepted events from position `index` on (a copy)."""
        return self._app.recorder.accepted(index)

    def accepted_for(self, account: str | None) -> list[AcceptedEvent]:
        """The accepted events sent with `account`'s tokens (None: with no named account's), in arrival order."""
        return [event for event in self._app.recorder.accepted() if event.account == account]

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every non-/_mock request since the last reset, in arrival order (a copy)."""
        return self._app.recorder.requests()

    def wait_for_accepted(self, count: int, timeout: float = 10.0) -> bool:
        """Block until `count` events were accepted (True) or `timeout` seconds pass (False)."""
        return self._app.recorder.wait_for_accepted(count, timeout)

    def stats(self) -> dict[str, Any]:
        """Counters (as GET /_mock/stats, without the config); `["accounts"][name]` per named account."""
        return self._app.recorder.stats()

    @property
    def faults(self) -> Faults:
        return self._app.faults

    def configure(self, **faults: Any) -> Faults:
        """Change fault settings at run time; returns the new settings. ValueError on a bad name/value."""
        return self._app.configure(faults)

    @property
    def accounts(self) -> dict[str, MockAccount]:
        """The named accounts as they are now (a copy; {} without named accounts)."""
        return self._app.tokens.accounts()

    def configure_account(self, name: str, **settings: Any) -> MockAccount:
        """Change account `name` at run time (`MockAccount` names, e.g. refuse_refresh=True); returns it.
        ValueError on an unknown account or setting, or a bad value. Tokens it issued stay valid."""
        return self._app.configure_accounts({name: settings})[name]

    def reset(self) -> None:
        """Forget recordings and counters, restore the start-up faults and account settings (issued tokens
        stay valid)."""
        self._app.reset()

    def issued_tokens(self) -> list[str]:
        """Every access and refresh token the mock issued or was configured with (for secret-leak tests)."""
        return self._app.tokens.issued()

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far expired."""
        self._app.tokens.expire_all()


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel connection tasks still running (e.g. sleeping for latency) so the loop closes cleanly."""
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def _parser() -> argparse.ArgumentParser:
    defaults = Faults()
    parser = argparse.ArgumentParser(prog="rd-connector mock-rd", description="Serve a mock RD Station API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (printed)")
    parser.add_argument("--latency-ms", type=float, default=defaults.latency_ms)
    parser.add_argument("--rate-limit-per-s", type=int, default=defaults.rate_limit_per_s)
    parser.add_argument("--rate-limit-header", choices=RATE_LIMIT_HEADERS, default=defaults.rate_limit_header)
    parser.add_argument("--error-5xx-ratio", type=float, default=defaults.error_5xx_ratio)
    parser.add_argument("--drop-ratio", type=float, default=defaults.drop_ratio)
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--token-ttl-s", type=float, default=defaults.token_ttl_s)
    parser.add_argument(
        "--limited-contact",
        action="append",
        dest="limited_contacts",
        default=[],
        help="a contact (email) over RD's per-contact limit: its batches get lead_limiter 429s (repeatable)",
    )
    parser.add_argument("--contact-limit-remaining-s", type=int, default=defaults.contact_limit_remaining_s)
    parser.add_argument(
        "--daily-quota-s", type=int, default=None, help="the account's quota is spent for this long: every call 429s"
    )
    parser.add_argument("--strict-auth", action="store_true")
    parser.add_argument("--rotate-refresh-token", action="store_true")
    parser.add_argument(
        "--no-validate-payloads",
        dest="validate_payloads",
        action="store_false",
        help="check envelopes only (benchmarks: the payload rules would make the mock the bottleneck)",
    )
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--refresh-token", action="append", dest="refresh_tokens", help="repeatable")
    parser.add_argument(
        "--accounts",
        type=_accounts_json,
        help='named RD accounts, JSON: {"a": {"client_id": "...", "client_secret": "...", ...}} (see MockAccount)',
    )
    return parser


def _accounts_json(text: str) -> dict[str, MockAccount]:
    """`--accounts`: a JSON object of `MockAccount` objects by name."""
    try:
        data = orjson.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a JSON object of accounts by name")
        return {str(name): MockAccount.from_json(account) for name, account in data.items()}
    except ValueError as exc:  # argparse reports it and exits 2
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cli(argv: Sequence[str] | None = None) -> int:
    """Serve in the foreground until SIGINT/SIGTERM; prints "mock-rd listening on <url>". Returns 0, or 2
    on a bad setting or a port that cannot be bound."""
    args = vars(_parser().parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    auth = {name: args.pop(name) for name in ("client_id", "client_secret", "refresh_tokens", "accounts")}
    try:
        server = MockRdServer(host, port, **auth, **args).start()
    except (ValueError, OSError) as exc:
        print(f"mock-rd: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"mock-rd listening on {server.url}", flush=True)
    # The mock keeps every accepted event (for /_mock/events_since): millions of dicts that the automatic
    # collections rescan again and again (mock CPU per 200 KB batch 5-11 ms, growing with the run; 1.7 ms
    # without). In the mock's own process only, the cyclic collector is off: a request leaves ~45 objects of
    # cyclic garbage (measured), next to the ~200 KB of events it keeps anyway.
    gc.disable()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
