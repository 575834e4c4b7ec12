"""`rd-connector check`: preflight of a configuration, before `run`. Prints one line per check,
`PASS|FAIL|SKIP <check>: <detail>`, then a summary; exit 0 only if no check failed (SKIP is not a
failure: it means "not configured" or "cannot run because an earlier check failed"), 1 if one did,
2 if the configuration cannot even be loaded.

Checks, in order:
- `config`: values valid (`load_settings`) and complete for `run` (`Settings.require_pipeline`).
- `brokers`: an AdminClient (with every `RDC_KAFKA__*` setting: SASL, SSL...) gets the cluster metadata
  within `--timeout` seconds; a failure names the client's own last error (e.g. "Connection refused").
- `topics`: every source topic, the results topic and the dead-letter topic exist (missing ones listed).
  Metadata is listed for all topics, never for named ones, so a broker that auto-creates topics on a
  metadata request (Tansu does) does not create them.
- `schema-registry`: when `RDC_SCHEMA_REGISTRY_URL` is set, `GET /subjects` answers (with basic auth).
For every RD account of `Settings.rd_accounts()` (`default` from RDC_RD_*, then each `[accounts.<name>]`),
`rd-token[<name>]` and `rd-api[<name>]`, or plain `rd-token` and `rd-api` when the only account is `default`.
Each account is called at its own base URL with its own credentials:
- `rd-token`: with the refresh flow, an access token exactly as `run` gets it (`tokens_of`: the same
  `RefreshingToken`).
  With the token store (RDC_TOKEN_STORE=true, the default): the store `run` uses (`token_store_of`, topic
  created if missing) is read to its end first, and if it cannot be, the check FAILs without refreshing
  (naming RDC_TOKEN_STORE_TOPIC and the cause). A valid access token stored there is used as is (no
  refresh, said in the detail); else `POST {base}/auth/token`, starting from the store's newest refresh
  token, and RD's answer (a rotated refresh token too) is published to the store before it is used, so
  `run` and the replicas start from it. RDC_RD_TOKEN_FILE is not needed then (if set, it is written too).
  Without the store: from the refresh token in `RDC_RD_TOKEN_FILE` if that file holds one, and a rotated
  refresh token is stored there (atomically), so `run` after `check` uses the newest one. Without
  `RDC_RD_TOKEN_FILE` (or with one that cannot be written; an `[accounts.<name>]` never has one) it FAILs
  without refreshing: a refresh may rotate the refresh token, and with nowhere to keep the new one `run`
  would be refused. With a static access token there is nothing to obtain (SKIP); the next check proves it.
- `rd-api`: `POST {base}/platform/events/batch` with the body `[]`, through `run`'s own `RdClient`. No
  event is sent. RD authenticates before it validates the body, so 401 means the token is refused, while
  400 (an empty batch is invalid) proves the token was accepted; a 200 would too. 403/404/415 mean a
  wrong account, URL or proxy.

RD is called through `run`'s HTTP client (`bounded_client`: the same proxy choice, each request bounded
in time and size); each request is over within `--timeout` seconds, a token refresh within
`RDC_HTTP_TIMEOUT_S` (as in `run`).

No secret is ever printed: every detail goes through the log `Redactor` with every configured secret
(`Settings.secret_values()`: every account's).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
from confluent_kafka import KafkaException

from connector.commands.rd_accounts import token_store_of, tokens_of
from connector.config import Secret, Settings, load_settings
from connector.config.accounts import DEFAULT_ACCOUNT, Account
from connector.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    AuthFatal,
    AuthUnavailable,
    ConfigError,
    ConnectorError,
)
from connector.ops.logs import Redactor
from connector.rd.auth import RefreshingToken
from connector.rd.bounded_http import bounded_client
from connector.rd.client import RdClient, StaticToken
from connector.rd.token_file import token_file_problem
from connector.rd.token_store import KafkaTokenStore

__all__ = ["CheckResult", "cli", "run_checks"]

_NO_TOKEN_FILE: Final = (
    "not refreshed: RDC_RD_TOKEN_FILE is not set. A refresh may rotate the refresh token (RD then refuses "
    "the configured one), and the new one would have nowhere to go: run would be locked out "
    "(INVALID_REFRESH_TOKEN). Set RDC_RD_TOKEN_FILE to a writable path (run keeps the newest refresh token "
    "there too, for its restarts)"
)
_NO_STORE: Final = (
    "not refreshed: RDC_TOKEN_STORE=false, and only the account default has a token file (RDC_RD_TOKEN_FILE). "
    "A refresh may rotate the refresh token of account {name} (RD then refuses the configured one), and the new "
    "one would have nowhere to go: run would be locked out (INVALID_REFRESH_TOKEN). Set RDC_TOKEN_STORE=true "
    "(the default): run keeps each account's newest tokens in RDC_TOKEN_STORE_TOPIC"
)
_EXCERPT: Final = 200
_EMPTY_BATCH: Final = b"[]"  # the only body check ever POSTs: no event is sent
_RD_HINTS: Final = {
    403: "forbidden: wrong account or missing permission",
    404: "not found: check RDC_RD_BASE_URL",
    415: "unsupported media type: a proxy rewrote the request?",
    429: "rate limited: try again later",
}


@dataclass(frozen=True, slots=True)
class CheckResult:
    status: str  # PASS, FAIL or SKIP
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status} {self.name}: {self.detail}"


def _pass(name: str, detail: str) -> CheckResult:
    return CheckResult("PASS", name, detail)


def _fail(name: str, detail: str) -> CheckResult:
    return CheckResult("FAIL", name, detail)


def _skip(name: str, detail: str) -> CheckResult:
    return CheckResult("SKIP", name, detail)


def _excerpt(body: str) -> str:
    text = " ".join(body.split())
    return text[:_EXCERPT] + ("..." if len(text) > _EXCERPT else "")


# -- Kafka ------------------------------------------------------------------------------------------


def _metadata(settings: Settings, timeout_s: float) -> tuple[Any, str]:
    """(cluster metadata or None, error detail)."""
    from confluent_kafka import KafkaError, KafkaException

    from connector.ops.kafka_clients import new_admin

    errors: list[str] = []
    quiet = logging.getLogger("connector.commands.check.librdkafka")
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())

    def on_error(error: KafkaError) -> None:
        errors.append(error.str())

    config: dict[str, Any] = {**settings.kafka_common(), "error_cb": on_error, "logger": quiet}
    try:
        admin = new_admin(config)
    except (KafkaException, ValueError, TypeError) as exc:  # an invalid librdkafka setting
        return None, f"invalid Kafka client setting: {exc}"
    try:
        return admin.list_topics(timeout=timeout_s), ""
    except KafkaException as exc:
        error = exc.args[0] if exc.args else exc
        summary = error.str() if isinstance(error, KafkaError) else str(error)
        admin.poll(0)  # serves error_cb: it carries the precise cause ("Connection refused", "SSL handshake...")
        cause = errors[0] if errors else summary
        return None, summary if cause == summary else f"{summary}; {cause}"


def _check_brokers(settings: Settings, metadata: Any, error: str, timeout_s: float) -> CheckResult:
    servers = settings.kafka_bootstrap_servers
    if metadata is None:
        return _fail("brokers", f"cannot reach {servers} within {timeout_s:g} s: {error}")
    brokers = len(metadata.brokers)
    return _pass("brokers", f"reached {servers}: {brokers} broker(s), cluster {metadata.cluster_id}")


def _check_topics(settings: Settings, metadata: Any) -> CheckResult:
    wanted = [*settings.topics, settings.results_topic, settings.dlq_topic]
    found = {name: topic for name, topic in metadata.topics.items() if topic.error is None}
    missing = [name for name in wanted if name not in found]
    if missing:
        return _fail("topics", f"missing: {', '.join(missing)} (create them; the connector never does)")
    described = ", ".join(f"{name} ({len(found[name].partitions)} partitions)" for name in wanted)
    return _pass("topics", described)


# -- HTTP: Schema Registry and RD ------------------------------------------------------------------


def _check_registry(settings: Settings, http: httpx.Client) -> CheckResult:
    url = settings.schema_registry_url
    if not url:
        return _skip("schema-registry", "not configured (RDC_SCHEMA_REGISTRY_URL)")
    auth = None
    if settings.schema_registry_username is not None:
        password = settings.schema_registry_password.reveal() if settings.schema_registry_password else ""
        auth = httpx.BasicAuth(settings.schema_registry_username, password)
    try:
        response = http.get(f"{url}/subjects", auth=auth, headers={"Accept": "application/vnd.schemaregistry.v1+json"})
    except httpx.HTTPError as exc:
        return _fail("schema-registry", f"cannot reach {url}: {exc!r}")
    status = response.status_code
    if status in (401, 403):
        return _fail("schema-registry", f"{url} refused our credentials (HTTP {status})")
    if status == 200:
        return _pass("schema-registry", f"reached {url}: {len(_json_list(response))} subject(s)")
    if status < 500 and "error_code" in _excerpt(response.text):  # a registry's own error body: it is one
        return _pass("schema-registry", f"reached {url}: it answered HTTP {status} with a registry error body")
    return _fail("schema-registry", f"{url} answered HTTP {status}: {_excerpt(response.text)}")


def _json_list(response: httpx.Response) -> list[Any]:
    try:
        body = response.json()
    except ValueError:
        return []
    return body if isinstance(body, list) else []


@dataclass(frozen=True, slots=True)
class _Store:
    """The token store as `check` uses it: open (`store`), off (both None), or unusable (`problem`)."""

    store: KafkaTokenStore | None = None
    problem: str | None = None


def _open_store(settings: Settings, kafka_error: str | None, timeout_s: float) -> _Store:
    """The token store `run` would use (`token_store_of`: its topic created if missing), read to its end so
    that a store that cannot be read FAILs before any refresh. `kafka_error`: why the brokers check failed."""
    if not settings.token_store or not any(account.refresh_flow for account in settings.rd_accounts()):
        return _Store()
    if not settings.kafka_bootstrap_servers:
        return _Store(problem="RDC_KAFKA_BOOTSTRAP_SERVERS is not set")
    if kafka_error is not None:
        return _Store(problem=f"Kafka is unreachable (see brokers): {kafka_error}")
    store = None
    try:
        store = token_store_of(settings, timeout_s=timeout_s)
        if store is not None:
            store.read_to_end(timeout_s)
    except (ConnectorError, KafkaException, ValueError, TypeError) as exc:
        if store is not None:
            store.close()
        return _Store(problem=str(exc))
    return _Store(store)


def _store_failure(settings: Settings, problem: str) -> str:
    return (
        f"not refreshed: the token store RDC_TOKEN_STORE_TOPIC={settings.token_store_topic} cannot be used: "
        f"{problem}. run and the replicas keep the newest (rotated) refresh token there, so check does not refresh "
        "without it: fix that (or, for a single instance, set RDC_TOKEN_STORE=false and RDC_RD_TOKEN_FILE)"
    )


def _refusal(url: str, exc: AuthFatal) -> str:
    """What RD's refusal of an account's refresh means, and what to do: `exc` says it in the account's own
    settings (rd/token_refusal.py `refusal_message`)."""
    return f"RD refused the refresh credentials (HTTP {exc.status} from {url}): {exc}"


def _obtain_token(
    settings: Settings, account: Account, http: httpx.Client, shared: _Store
) -> tuple[CheckResult, Secret | None]:
    """(result, access token to probe RD with, or None).

    The token comes through `run`'s own code path (`tokens_of`, the same `RefreshingToken`). With the token
    store it is read first: a valid access token there is used as is (no refresh); a refresh is published
    there before it is used. Without the store it starts from the token in RDC_RD_TOKEN_FILE if there is one
    and stores a rotated refresh token there; without a token file it does not refresh at all: a rotating RD
    would revoke the configured refresh token and the new one would be lost, locking `run` out."""
    if not account.refresh_flow:
        if account.access_token is None:  # an incomplete refresh flow: `config` names it
            return _skip("rd-token", "no complete RD credentials (see config)"), None
        where = "RDC_RD_ACCESS_TOKEN" if account.name == DEFAULT_ACCOUNT else f"[accounts.{account.name}]"
        return _skip("rd-token", f"static access token ({where}); rd-api proves it"), account.access_token
    if shared.problem is not None:
        return _fail("rd-token", _store_failure(settings, shared.problem)), None
    store = shared.store
    token_file = Path(account.token_file) if account.token_file else None
    if store is None and token_file is None:
        if account.name == DEFAULT_ACCOUNT:
            return _fail("rd-token", _NO_TOKEN_FILE), None
        return _fail("rd-token", _NO_STORE.format(name=account.name)), None
    if token_file is not None:
        problem = token_file_problem(token_file)
        if problem is not None:
            return _fail("rd-token", f"not refreshed: RDC_RD_TOKEN_FILE={token_file} {problem}"), None
    tokens = tokens_of(
        account,
        http,
        metrics=None,
        health=None,
        timeout_s=settings.http_timeout_s,
        store=store,
        store_key=settings.token_store_key,
    )
    assert isinstance(tokens, RefreshingToken)  # the refresh flow's provider
    url = tokens.url
    try:
        access = tokens.token()
    except AuthFatal as exc:
        return _fail("rd-token", _refusal(url, exc)), None
    except AuthUnavailable as exc:
        return _fail("rd-token", f"no access token from {url}: {exc}"), None
    if store is None:
        return _without_store(tokens, url), access
    return _with_store(tokens, url, store.topic, token_file), access


def _without_store(tokens: RefreshingToken, url: str) -> CheckResult:
    if tokens.unsaved is not None:
        return _fail(
            "rd-token",
            f"RD rotated the refresh token and {tokens.unsaved}: the refresh token run would use is spent "
            "(INVALID_REFRESH_TOKEN); fix the file, then authorise the app again and set RDC_RD_REFRESH_TOKEN",
        )
    detail = f"obtained an access token from {url}"
    if tokens.rotations:
        detail += f"; RD rotated the refresh token: the new one is in RDC_RD_TOKEN_FILE={tokens.token_file} for run"
    return _pass("rd-token", detail)


def _with_store(tokens: RefreshingToken, url: str, topic: str, token_file: Path | None) -> CheckResult:
    where = f"the token store (RDC_TOKEN_STORE_TOPIC={topic})"
    if tokens.refreshes == 0:
        return _pass("rd-token", f"valid access token from {where}; not refreshed")
    if tokens.unpublished is not None:
        kept = (
            f"the new refresh token is only in RDC_RD_TOKEN_FILE={token_file}"
            if tokens.rotations and tokens.unsaved is None and token_file is not None
            else "the new refresh token is lost: authorise the app again"
            if tokens.rotations
            else "run and the replicas can still refresh"
        )
        return _fail("rd-token", f"obtained an access token from {url}, but {where} could not be written: {kept}")
    detail = f"obtained an access token from {url}"
    if tokens.adopted:
        detail += f" with the newest refresh token of {where}"
    detail += f"; published to {where} for run and the replicas"
    if tokens.rotations:
        also = f" and in RDC_RD_TOKEN_FILE={token_file}" if token_file is not None and tokens.unsaved is None else ""
        detail += f" (RD rotated the refresh token: the new one is there{also})"
    return _pass("rd-token", detail)


def _check_rd_api(
    settings: Settings, account: Account, http: httpx.Client, token: Secret | None, timeout_s: float
) -> CheckResult:
    """POST the empty batch `[]` with `token` through `run`'s `RdClient` (it never sends anything else)."""
    if token is None:
        return _skip("rd-api", "no access token to call RD with")
    client = RdClient(
        account.base_url, StaticToken(token), http, timeout_s=timeout_s, max_events=settings.batch_max_events
    )
    url = client.url
    try:
        answer = client.post_batch(_EMPTY_BATCH, token)
    except httpx.HTTPError as exc:
        return _fail("rd-api", f"cannot reach {url}: {exc!r}")
    status, body = answer.status_code, answer.body.decode("utf-8", "replace")
    if status == 401:
        return _fail("rd-api", f"RD refused the access token (HTTP 401 from {url}): {_excerpt(body)}")
    if status in (200, 400, 422):
        return _pass("rd-api", f"token accepted: HTTP {status} to an empty batch (no event sent) from {url}")
    reason = _RD_HINTS.get(status, "unexpected answer")
    return _fail("rd-api", f"HTTP {status} from {url} ({reason}): {_excerpt(body)}")


def _named(result: CheckResult, suffix: str) -> CheckResult:
    return CheckResult(result.status, result.name + suffix, result.detail)


def _check_account(
    settings: Settings, account: Account, http: httpx.Client | None, timeout_s: float, shared: _Store
) -> list[CheckResult]:
    """`rd-token` then `rd-api` of `account`, over `http` if given, else over `run`'s kind of client for the
    account's base URL (closed after)."""
    try:
        client = http or bounded_client(timeout_s, 2, account.base_url)
    except ConfigError as exc:  # a proxy run cannot use either
        return [_fail("rd-token", f"no HTTP client for RD: {exc}"), _skip("rd-api", "no HTTP client for RD")]
    try:
        token_result, token = _obtain_token(settings, account, client, shared)
        return [token_result, _check_rd_api(settings, account, client, token, timeout_s)]
    finally:
        if http is None:
            client.close()


def _check_rd(settings: Settings, http: httpx.Client | None, timeout_s: float, shared: _Store) -> list[CheckResult]:
    """`rd-token` and `rd-api` of every account: named `rd-token[<account>]`, `rd-api[<account>]`, except
    when the only account is `default` (then plain `rd-token`, `rd-api`, as before accounts existed)."""
    accounts = settings.rd_accounts()
    if not accounts:
        return [_skip("rd-token", "no RD credentials configured"), _skip("rd-api", "no access token to call RD with")]
    plain = len(accounts) == 1 and accounts[0].name == DEFAULT_ACCOUNT
    results = []
    for account in accounts:
        suffix = "" if plain else f"[{account.name}]"
        results += [_named(r, suffix) for r in _check_account(settings, account, http, timeout_s, shared)]
    return results


# -- orchestration --------------------------------------------------------------------------------


def run_checks(settings: Settings, *, timeout_s: float, http: httpx.Client | None = None) -> list[CheckResult]:
    """Run every check after `config` on `settings` (blocking, at most a few times `timeout_s`)."""
    results: list[CheckResult] = []
    kafka_error = None
    if settings.kafka_bootstrap_servers:
        metadata, error = _metadata(settings, timeout_s)
        results.append(_check_brokers(settings, metadata, error, timeout_s))
        if metadata is None:
            kafka_error = error
            results.append(_skip("topics", "brokers unreachable"))
        else:
            results.append(_check_topics(settings, metadata))
    else:
        results += [_skip("brokers", "RDC_KAFKA_BOOTSTRAP_SERVERS is not set"), _skip("topics", "no brokers")]
    client = http or httpx.Client(timeout=timeout_s)
    try:
        results.append(_check_registry(settings, client))
    finally:
        if http is None:
            client.close()
    shared = _open_store(settings, kafka_error, timeout_s)
    try:
        results += _check_rd(settings, http, timeout_s, shared)
    finally:
        if shared.store is not None:
            shared.store.close()
    return results


def _report(results: list[CheckResult], redact: Callable[[str], str], out: Any) -> int:
    for result in results:
        print(redact(result.line()), file=out)
    failed = [r.name for r in results if r.status == "FAIL"]
    if failed:
        print(f"check: {len(failed)} failed: {', '.join(failed)}", file=out)
        return EXIT_FAILED
    passed = sum(r.status == "PASS" for r in results)
    print(f"check: all passed ({passed} passed, {len(results) - passed} skipped)", file=out)
    return EXIT_OK


def cli(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """`rd-connector check [--config FILE] [--timeout S]`; settings from `env` (default os.environ)."""
    parser = argparse.ArgumentParser(prog="rd-connector check", description="Preflight: configuration, Kafka, RD.")
    parser.add_argument("--config", help="TOML configuration file (environment variables win)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds allowed to each network check")
    args = parser.parse_args(argv)
    out = sys.stdout
    try:
        settings = load_settings(os.environ if env is None else env, args.config)
    except ConfigError as exc:
        print(f"FAIL config: {exc}", file=out)
        print("check: configuration cannot be loaded; nothing else was checked", file=out)
        return EXIT_CONFIG
    redact = Redactor(settings.secret_values()).redact  # every account's secrets, the token store key...
    try:
        settings.require_pipeline()
        config = _pass("config", f"valid; {len(settings.topics)} source topic(s), group {settings.group_id}")
    except ConfigError as exc:
        config = _fail("config", str(exc))
    return _report([config, *run_checks(settings, timeout_s=args.timeout)], redact, out)
