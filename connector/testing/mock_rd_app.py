"""The mock RD API's request handling: routing, auth, fault injection, validation and recording.

Order of checks on the events endpoints (`POST /platform/events[/batch]`), first match answers:
latency (sleep) -> drop (close unanswered) -> auth (401) -> daily quota (429, gateway) -> rate limit
(429) -> 5xx dice -> Content-Type (415) -> body cap (413) -> JSON parse (400 BAD_REQUEST) -> envelope
(400 list) -> payload rules (400 field map) -> limited contacts (429, `lead_limiter`) -> reject marker
(400) -> 200. Faults apply to the events endpoints only; `/auth/token`
and `/_mock/*` never sleep, drop, rate-limit or fail at random. `/_mock/*` calls are not recorded.

Named accounts (`MockAccount`): the access token names the account, whose rate window (and limit) the
request counts against and whose name tags the recorded request and accepted events; `/auth/token`
picks the account by client_id. Unknown tokens (lenient mode) share one window of their own.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from connector.rd.auth import TOKEN_PATH
from connector.rd.client import BATCH_PATH
from connector.testing.mock_rd_auth import AuthRefused, MockAccount, TokenStore
from connector.testing.mock_rd_http import Request, Response
from connector.testing.mock_rd_state import Faults, RateWindow, RecordedRequest, Recorder
from connector.testing.mock_rd_validation import batch_errors, event_errors

__all__ = ["BATCH_PATH", "EVENTS_PATH", "TOKEN_PATH", "RdMockApp"]

EVENTS_PATH = "/platform/events"  # RD's single-event endpoint (the connector never calls it)
_EXPIRED_HEADER = (
    "WWW-Authenticate",
    'Bearer realm="https://api.rd.services/", error="expired_token", error_description="The access token expired"',
)
_BAD_BODY = "Could not parse the body of the request according to the provided Content-Type."


class _Call:
    """What a route learnt about one request for its recording: the account its credentials identify."""

    __slots__ = ("account",)

    def __init__(self) -> None:
        self.account: str | None = None


Route = Callable[[Request, _Call], Awaitable[Response | None]]


class _Answer(Exception):
    """Raised by a check to answer the request now with `response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _json(status: int, body: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, orjson.dumps(body), headers)


def _error_object(status: int, error_type: str, message: str) -> Response:
    return _json(status, {"errors": {"error_type": error_type, "error_message": message}})


def _error_list(status: int, error_type: str, message: str, *headers: tuple[str, str]) -> Response:
    return _json(status, {"errors": [{"error_type": error_type, "error_message": message}]}, headers)


class RdMockApp:
    """Answers requests as RD would, with injected faults. `handle` runs on the event loop; `configure`,
    `reset` and the `recorder`/`tokens` readers may be called from any thread."""

    def __init__(self, faults: Faults, tokens: TokenStore, recorder: Recorder) -> None:
        self._initial = faults
        self._initial_accounts = tokens.accounts()
        self._lock = threading.Lock()
        self.tokens = tokens
        self.recorder = recorder
        self._faults = faults
        self._rng = random.Random(faults.seed)
        self._uuids = random.Random()  # seeded from the OS: unique across mocks, not reseeded with the faults
        self._windows: dict[str | None, RateWindow] = {}  # by account, opened by its first request
        self._routes: dict[str, dict[str, Route]] = {
            BATCH_PATH: {"POST": self._batch},
            EVENTS_PATH: {"POST": self._single},
            TOKEN_PATH: {"POST": self._token},
            "/_mock/stats": {"GET": self._stats},
            "/_mock/config": {"GET": self._get_config, "POST": self._post_config},
            "/_mock/reset": {"POST": self._reset},
            "/_mock/events": {"GET": self._events_since},
            "/_mock/requests": {"GET": self._requests_since},
            "/_mock/expire_tokens": {"POST": self._expire_tokens},
            "/_mock/accounts": {"GET": self._get_accounts, "POST": self._post_accounts},
        }

    @property
    def faults(self) -> Faults:
        return self._faults

    def configure(self, changes: Mapping[str, Any]) -> Faults:
        """Apply fault changes (ValueError on an unknown name or bad value). A `seed` re-seeds the dice;
        a `rate_limit_per_s` opens fresh windows."""
        with self._lock:
            self._faults = self._faults.updated(changes)
            if "seed" in changes:
                self._rng = random.Random(self._faults.seed)
            if "rate_limit_per_s" in changes:
                self._windows = {}
            return self._faults

    def configure_accounts(self, changes: Mapping[str, Mapping[str, Any]]) -> dict[str, MockAccount]:
        """Change named accounts, `{account: {setting: value}}`, all or nothing; returns every account.
        ValueError as `TokenStore.configure`. A `rate_limit_per_s` opens a fresh window for its account."""
        with self._lock:
            accounts = self.tokens.configure(changes)
            for name, change in changes.items():
                if "rate_limit_per_s" in change:
                    self._windows.pop(name, None)
            return accounts

    def reset(self) -> None:
        """Forget recordings and counters and restore the start-up faults and account settings. Issued
        tokens stay valid."""
        with self._lock:
            self.recorder.reset()
            self._faults = self._initial
            self.tokens.restore(self._initial_accounts)
            self._rng = random.Random(self._initial.seed)
            self._windows = {}

    async def handle(self, request: Request) -> Response | None:
        """The answer to `request` (None: drop the connection). Records every non-/_mock request."""
        call = _Call()
        try:
            response = await self._dispatch(request, call)
        except _Answer as answer:
            response = answer.response
        if not request.path.startswith("/_mock/"):
            status = 0 if response is None else response.status
            size, at = len(request.body), request.received_at
            record = RecordedRequest(request.method, request.path, status, size, at, call.account)
            self.recorder.record_request(record, events_endpoint=request.path in (BATCH_PATH, EVENTS_PATH))
        return response

    async def _dispatch(self, request: Request, call: _Call) -> Response | None:
        methods = self._routes.get(request.path)
        if methods is None:
            return _error_object(404, "RESOURCE_NOT_FOUND", "Resource not found.")
        route = methods.get(request.method)
        if route is None:
            response = _error_object(405, "METHOD_NOT_ALLOWED", "Method not allowed.")
            return Response(response.status, response.body, (("Allow", ", ".join(methods)),))
        return await route(request, call)

    # events endpoints

    async def _batch(self, request: Request, call: _Call) -> Response | None:
        return await self._events(request, call, batch=True)

    async def _single(self, request: Request, call: _Call) -> Response | None:
        return await self._events(request, call, batch=False)

    async def _events(self, request: Request, call: _Call, *, batch: bool) -> Response | None:
        faults = self._faults
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        if self._roll(faults.drop_ratio):
            return None
        account = self._authorize(request, faults, call)
        if faults.daily_quota_s is not None:
            quotas = (("retry-after-quotas", str(faults.daily_quota_s)), ("ratelimit-limit-quotas", "120"))
            return _json(429, {"message": "API rate limit exceeded"}, quotas)
        self._rate_limit(faults, account)
        if self._roll(faults.error_5xx_ratio):
            return self._server_error()
        data = _json_body(request, faults.max_body_bytes)
        errors = batch_errors(data, payloads=faults.validate_payloads) if batch else event_errors(data)
        if errors is not None:
            return _json(400, errors)
        events = data if batch else [data]
        if faults.limited_contacts:
            limited = _lead_limited(events, faults.limited_contacts, faults.contact_limit_remaining_s)
            if limited is not None:
                return limited
        if faults.reject_marker is not None:
            refused = _marked(events, faults.reject_marker)
            if refused is not None:
                return _json(400, refused)
        answer = self._accept(events, account, batch=batch)
        if faults.short_answer and batch:
            body = orjson.loads(answer.body)
            body["events"] = body["events"][:-1]
            return _json(200, body)
        return answer

    def _roll(self, ratio: float) -> bool:
        return ratio > 0 and self._rng.random() < ratio

    def _authorize(self, request: Request, faults: Faults, call: _Call) -> str | None:
        """The named account the access token belongs to (None: none), also in `call`, or _Answer(401)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _Answer(_error_list(401, "UNAUTHORIZED", "Invalid token."))
        verdict, account = self.tokens.check_access(token, strict=faults.strict_auth, now=time.monotonic())
        call.account = account
        if verdict == "expired":
            raise _Answer(_error_list(401, "UNAUTHORIZED", "Invalid token.", _EXPIRED_HEADER))
        if verdict == "invalid":
            raise _Answer(_error_list(401, "UNAUTHORIZED", "Invalid token."))
        return account

    def _rate_limit(self, faults: Faults, account: str | None) -> None:
        settings = None if account is None else self.tokens.account(account)
        own = None if settings is None else settings.rate_limit_per_s
        limit = own or faults.rate_limit_per_s
        if not limit:
            return
        window = self._windows.get(account)
        if window is None or window.limit != limit:
            window = self._windows[account] = RateWindow(limit)
        wait_s = window.admit(time.monotonic())
        if wait_s is None:
            return
        seconds = max(1, math.ceil(wait_s))
        if faults.rate_limit_header == "quotas":
            quotas = (("retry-after-quotas", str(seconds)), ("ratelimit-limit-quotas", str(limit)))
            raise _Answer(_json(429, {"message": "API rate limit exceeded"}, quotas))
        if faults.rate_limit_header == "remaining_time":
            message = f"'account_limiter' rate limit exceeded for 1 second(s) period for key {limit}"
            raise _Answer(_json(429, {"error": message, "max": limit, "usage": limit + 1, "remaining_time": seconds}))
        raise _Answer(_json(429, {"message": "API rate limit exceeded"}, (("Retry-After", str(seconds)),)))

    def _server_error(self) -> Response:
        if self._rng.random() < 0.5:
            return _error_object(500, "INTERNAL_SERVER_ERROR", "Service temporarily unavailable")
        return _error_object(503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable")

    def _accept(self, events: list[dict[str, Any]], account: str | None, *, batch: bool) -> Response:
        uuids = [_uuid4(self._uuids) for _ in events]
        batch_uuid = _uuid4(self._uuids) if batch else None
        self.recorder.record_accepted(events, uuids, batch_uuid, account)
        if not batch:
            return _json(200, {"event_uuid": uuids[0]})
        return _json(200, {"event_batch_uuid": batch_uuid, "events": [{"event_uuid": u} for u in uuids]})

    # auth

    async def _token(self, request: Request, call: _Call) -> Response:
        faults = self._faults
        data = _json_body(request, faults.max_body_bytes)
        if not isinstance(data, dict):
            return _error_object(400, "BAD_REQUEST", _BAD_BODY)
        try:
            answer, call.account = self.tokens.refresh(
                data, ttl_s=faults.token_ttl_s, rotate=faults.rotate_refresh_token, now=time.monotonic()
            )
        except AuthRefused as exc:
            call.account = exc.account
            return _error_list(401, exc.error_type, exc.message)
        self.recorder.record_token_issue(call.account)
        return _json(200, answer)

    # control endpoints (/_mock/*)

    async def _stats(self, request: Request, call: _Call) -> Response:
        return _json(200, {**self.recorder.stats(), "config": self._faults.as_dict()})

    async def _get_config(self, request: Request, call: _Call) -> Response:
        return _json(200, self._faults.as_dict())

    async def _post_config(self, request: Request, call: _Call) -> Response:
        try:
            changes = orjson.loads(request.body or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("body must be a JSON object of settings")
            return _json(200, self.configure(changes).as_dict())
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            return _error_object(400, "BAD_REQUEST", str(exc))

    async def _reset(self, request: Request, call: _Call) -> Response:
        self.reset()
        return _json(200, {"reset": True})

    async def _events_since(self, request: Request, call: _Call) -> Response:
        since, limit = _window_params(request)
        events = self.recorder.accepted(since)[:limit]
        body = {"events": [e.as_json() for e in events], "next": since + len(events)}
        return _json(200, body)

    async def _requests_since(self, request: Request, call: _Call) -> Response:
        since, limit = _window_params(request)
        requests = self.recorder.requests(since)[:limit]
        return _json(200, {"requests": [r.as_json() for r in requests], "next": since + len(requests)})

    async def _expire_tokens(self, request: Request, call: _Call) -> Response:
        self.tokens.expire_all()
        return _json(200, {"expired": True})

    async def _get_accounts(self, request: Request, call: _Call) -> Response:
        return _json(200, _public(self.tokens.accounts()))

    async def _post_accounts(self, request: Request, call: _Call) -> Response:
        try:
            changes = orjson.loads(request.body or b"{}")
            if not isinstance(changes, dict) or not all(isinstance(c, dict) for c in changes.values()):
                raise ValueError("body must be a JSON object of accounts, each an object of settings")
            return _json(200, _public(self.configure_accounts(changes)))
        except ValueError as exc:
            return _error_object(400, "BAD_REQUEST", str(exc))


def _public(accounts: Mapping[str, MockAccount]) -> dict[str, Any]:
    return {name: account.public_json() for name, account in accounts.items()}


def _marked(events: list[dict[str, Any]], marker: str) -> dict[str, Any] | None:
    """RD's field-keyed 400 body for the events containing `marker` (None if there are none)."""
    needle = marker.encode()
    errors = [
        {
            "error_type": "INVALID",
            "error_message": "email was refused by RD (mock reject_marker).",
            "path": f"$.body[{i}].payload.email",
            "index": i,
        }
        for i, event in enumerate(events)
        if needle in orjson.dumps(event)
    ]
    return {"errors": {"email": errors}} if errors else None


def _lead_limited(events: list[dict[str, Any]], contacts: tuple[str, ...], remaining_s: int) -> Response | None:
    """RD's per-contact limiter's 429 when an event's contact (payload `email` or `identifier`) is in
    `contacts` (None if none is): RD's app answers it, so no Retry-After, only `remaining_time`."""
    for event in events:
        payload = event.get("payload")
        contact = (payload.get("email") or payload.get("identifier")) if isinstance(payload, dict) else None
        if contact in contacts:
            message = f"'lead_limiter' rate limit exceeded for 86400 second(s) period for key {contact}"
            return _json(429, {"error": message, "max": 120, "usage": 121, "remaining_time": remaining_s})
    return None


def _uuid4(rng: random.Random) -> str:
    """A random (version 4) UUID string. Unique, not unpredictable: enough for a mock. `str(uuid.uuid4())`
    costs 2.2 us (a getrandom syscall and the UUID class), this 0.6 us; at 275 events a batch that was a
    fifth of the benchmark mock's CPU, which shares the machine with the client it measures."""
    bits = (rng.getrandbits(128) & 0xFFFFFFFF_FFFF_0FFF_3FFF_FFFFFFFFFFFF) | 0x00000000_0000_4000_8000_000000000000
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _json_body(request: Request, max_bytes: int) -> Any:
    """The decoded JSON body; raises _Answer with 415 (not JSON), 413 (over `max_bytes`) or 400."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise _Answer(_error_object(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json."))
    if len(request.body) > max_bytes:
        raise _Answer(_error_object(413, "REQUEST_ENTITY_TOO_LARGE", f"Body is over {max_bytes} bytes."))
    try:
        return orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise _Answer(_error_object(400, "BAD_REQUEST", _BAD_BODY)) from exc


def _window_params(request: Request) -> tuple[int, int | None]:
    """(since, limit) from the query string; bad values answer 400."""
    try:
        since = max(0, int(request.query.get("since", "0")))
        limit = request.query.get("limit")
        return since, None if limit is None else max(0, int(limit))
    except ValueError as exc:
        raise _Answer(_error_object(400, "BAD_REQUEST", "since and limit must be integers.")) from exc
