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
- `rd-token`: with the refresh flow, `POST {base}/auth/token` returns an access token, exactly as `run`
  gets it (`refresh_flow`: the same `RefreshingToken`): from the refresh token in `RDC_RD_TOKEN_FILE` if
  that file holds one, and a rotated refresh token is stored there (atomically), so `run` after `check`
  uses the newest one. Without
  `RDC_RD_TOKEN_FILE` (or with one that cannot be written) it FAILs without refreshing: a refresh may
  rotate the refresh token, and with nowhere to keep the new one `run` would be refused. With a static
  `RDC_RD_ACCESS_TOKEN` there is nothing to obtain (SKIP); the next check proves it.
- `rd-api`: `POST {base}/platform/events/batch` with the body `[]`, through `run`'s own `RdClient`. No
  event is sent. RD authenticates before it validates the body, so 401 means the token is refused, while
  400 (an empty batch is invalid) proves the token was accepted; a 200 would too. 403/404/415 mean a
  wrong account, URL or proxy.

RD is called through `run`'s HTTP client (`bounded_client`: the same proxy choice, each request bounded
in time and size); each request is over within `--timeout` seconds, a token refresh within
`RDC_HTTP_TIMEOUT_S` (as in `run`).

No secret is ever printed: every detail goes through the log `Redactor` with the configured secrets.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from connector.config import Secret, Settings, load_settings
from connector.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, AuthFatal, AuthUnavailable, ConfigError
from connector.ops.logs import Redactor
from connector.rd.auth import refresh_flow, token_file_problem
from connector.rd.bounded_http import bounded_client
from connector.rd.client import RdClient, StaticToken

__all__ = ["CheckResult", "cli", "run_checks"]

_NO_TOKEN_FILE: Final = (
    "not refreshed: RDC_RD_TOKEN_FILE is not set. A refresh may rotate the refresh token (RD then refuses "
    "the configured one), and the new one would have nowhere to go: run would be locked out "
    "(INVALID_REFRESH_TOKEN). Set RDC_RD_TOKEN_FILE to a writable path (run keeps the newest refresh token "
    "there too, for its restarts)"
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
    from confluent_kafka.admin import AdminClient

    errors: list[str] = []
    quiet = logging.getLogger("connector.commands.check.librdkafka")
    quiet.propagate = False
    quiet.addHandler(logging.NullHandler())

    def on_error(error: KafkaError) -> None:
        errors.append(error.str())

    config: dict[str, Any] = {**settings.kafka_common(), "error_cb": on_error, "logger": quiet}
    try:
        admin = AdminClient(config)
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


def _obtain_token(settings: Settings, http: httpx.Client) -> tuple[CheckResult, Secret | None]:
    """(result, access token to probe RD with, or None). The refresh goes through `run`'s own code path
    (`refresh_flow`): it starts from the token in RDC_RD_TOKEN_FILE if there is one, and stores a rotated
    refresh token there. Without a token file it does not refresh at all: a rotating RD would revoke the
    configured refresh token and the new one would be lost, locking `run` out."""
    if settings.rd_access_token is not None and not settings.rd_refresh_token:
        static = _skip("rd-token", "static access token (RDC_RD_ACCESS_TOKEN); rd-api proves it")
        return static, settings.rd_access_token
    tokens = refresh_flow(settings, http)
    if tokens is None:
        return _skip("rd-token", "no RD credentials configured"), None
    if tokens.token_file is None:
        return _fail("rd-token", _NO_TOKEN_FILE), None
    problem = token_file_problem(tokens.token_file)
    if problem is not None:
        return _fail("rd-token", f"not refreshed: RDC_RD_TOKEN_FILE={tokens.token_file} {problem}"), None
    url = tokens.url
    try:
        access = tokens.token()
    except AuthFatal as exc:
        return _fail("rd-token", f"RD refused the refresh credentials (HTTP {exc.status} from {url}): {exc}"), None
    except AuthUnavailable as exc:
        return _fail("rd-token", f"no access token from {url}: {exc}"), None
    if tokens.unsaved is not None:
        return _fail(
            "rd-token",
            f"RD rotated the refresh token and {tokens.unsaved}: the refresh token run would use is spent "
            "(INVALID_REFRESH_TOKEN); fix the file, then authorise the app again and set RDC_RD_REFRESH_TOKEN",
        ), None
    detail = f"obtained an access token from {url}"
    if tokens.rotations:
        detail += f"; RD rotated the refresh token: the new one is in RDC_RD_TOKEN_FILE={tokens.token_file} for run"
    return _pass("rd-token", detail), access


def _check_rd_api(settings: Settings, http: httpx.Client, token: Secret | None, timeout_s: float) -> CheckResult:
    """POST the empty batch `[]` with `token` through `run`'s `RdClient` (it never sends anything else)."""
    if token is None:
        return _skip("rd-api", "no access token to call RD with")
    client = RdClient(
        settings.rd_base_url, StaticToken(token), http, timeout_s=timeout_s, max_events=settings.batch_max_events
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


def _check_rd(settings: Settings, http: httpx.Client | None, timeout_s: float) -> list[CheckResult]:
    """`rd-token` then `rd-api`, over `http` if given, else over `run`'s kind of client (closed after)."""
    try:
        client = http or bounded_client(timeout_s, 2, settings.rd_base_url)
    except ConfigError as exc:  # a proxy run cannot use either
        return [_fail("rd-token", f"no HTTP client for RD: {exc}"), _skip("rd-api", "no HTTP client for RD")]
    try:
        token_result, token = _obtain_token(settings, client)
        return [token_result, _check_rd_api(settings, client, token, timeout_s)]
    finally:
        if http is None:
            client.close()


# -- orchestration --------------------------------------------------------------------------------


def run_checks(settings: Settings, *, timeout_s: float, http: httpx.Client | None = None) -> list[CheckResult]:
    """Run every check after `config` on `settings` (blocking, at most a few times `timeout_s`)."""
    results: list[CheckResult] = []
    if settings.kafka_bootstrap_servers:
        metadata, error = _metadata(settings, timeout_s)
        results.append(_check_brokers(settings, metadata, error, timeout_s))
        if metadata is None:
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
    results += _check_rd(settings, http, timeout_s)
    return results


def _secrets(settings: Settings) -> list[str]:
    values = [settings.rd_access_token, settings.rd_client_secret, settings.rd_refresh_token]
    values.append(settings.schema_registry_password)
    revealed = [secret.reveal() for secret in values if secret is not None]
    revealed += [value for key, value in settings.kafka.items() if any(w in key for w in ("password", "secret"))]
    return revealed


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
    redact = Redactor(_secrets(settings)).redact
    try:
        settings.require_pipeline()
        config = _pass("config", f"valid; {len(settings.topics)} source topic(s), group {settings.group_id}")
    except ConfigError as exc:
        config = _fail("config", str(exc))
    return _report([config, *run_checks(settings, timeout_s=args.timeout)], redact, out)
