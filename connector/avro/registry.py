"""A small Confluent Schema Registry client: fetch writer schemas by id (cached), register schemas.

Only `GET /schemas/ids/{id}`, `POST /subjects/{subject}/versions` and (for `rd-connector mapping check`)
`GET /subjects/{subject}/versions/latest` are used. The HTTP client is
injected (an `httpx.Client`; tests pass one over loopback or an `httpx.MockTransport`).

`registry_from_settings(settings)` is how every command builds its client from `RDC_SCHEMA_REGISTRY_*`;
`registry_client(url, username, password)` is the same for callers holding the three values (a decode
worker's `DecoderSpec`, `produce-sample`'s options). Both return None when no URL is set.

Errors: an id the registry does not know (404) is the record's problem -> `DecodeError` with reason
`unknown_schema_id` (not cached: it may be registered later). A schema the registry returns that we cannot
use -> `DecodeError` `unsupported_schema` (cached). Anything else (connection error, timeout, 5xx,
401/403) is the registry's problem, not the record's -> `SchemaRegistryUnavailable`.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from connector.errors import DecodeError, SchemaRegistryUnavailable

if TYPE_CHECKING:
    import httpx

    from connector.config import Settings

__all__ = ["SchemaRegistryClient", "registry_client", "registry_from_settings"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class SchemaRegistryClient:
    """Schema Registry at `url` with optional basic auth. Thread-safe; each id is fetched once.

    `get_schema` blocks on HTTP only the first time an id is seen (at most `timeout` seconds)."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        import httpx  # here, not with the module: a decode worker without a registry never loads it (3-4 MiB)

        auth = httpx.BasicAuth(username, password or "") if username is not None else None
        self._client = client or httpx.Client(timeout=timeout)
        self._owns_client = client is None
        self._base = url.rstrip("/")
        self._auth = auth
        self._cache: dict[int, dict[str, Any] | DecodeError] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> SchemaRegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_schema(self, schema_id: int) -> dict[str, Any]:
        """The writer schema JSON (a dict) registered under `schema_id`.

        Raises `DecodeError` (`unknown_schema_id`, `unsupported_schema`) or `SchemaRegistryUnavailable`."""
        cached = self._cache.get(schema_id)
        if cached is None:
            with self._lock:
                cached = self._cache.get(schema_id)
                if cached is None:
                    cached = self._fetch(schema_id)
                    self._cache[schema_id] = cached
        if isinstance(cached, DecodeError):
            raise cached
        return cached

    def _fetch(self, schema_id: int) -> dict[str, Any] | DecodeError:
        response = self._request("GET", f"/schemas/ids/{schema_id}")
        if response.status_code == 404:
            raise DecodeError("unknown_schema_id", f"schema id {schema_id} is not in the Schema Registry")
        try:
            body = response.json()
        except ValueError as exc:
            raise SchemaRegistryUnavailable(f"Schema Registry {self._base} sent a non-JSON answer") from exc
        if not isinstance(body, dict):
            return DecodeError("unsupported_schema", f"schema id {schema_id}: registry sent no valid schema")
        schema_type = body.get("schemaType", "AVRO")
        if schema_type != "AVRO" or body.get("references"):
            return DecodeError(
                "unsupported_schema",
                f"schema id {schema_id} is {schema_type} with references={body.get('references')!r};"
                " only standalone AVRO schemas are supported",
            )
        try:
            schema = json.loads(body["schema"])
        except (KeyError, TypeError, ValueError):
            return DecodeError("unsupported_schema", f"schema id {schema_id}: registry sent no valid schema")
        if not isinstance(schema, dict) or schema.get("type") != "record":
            return DecodeError("unsupported_schema", f"schema id {schema_id} is not an Avro record schema")
        return schema

    def latest(self, subject: str) -> tuple[int, dict[str, Any]] | None:
        """(id, schema JSON) of the latest version registered under `subject`, or None if there is none.

        Raises `SchemaRegistryUnavailable` (as `get_schema`), or `DecodeError` for an answer that is no schema."""
        response = self._request("GET", f"/subjects/{quote(subject, safe='')}/versions/latest")
        if response.status_code == 404:
            return None
        try:
            body = response.json()
            return int(body["id"]), json.loads(body["schema"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DecodeError("unsupported_schema", f"subject {subject!r}: the registry sent no valid schema") from exc

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """Register `schema` under `subject` (idempotent on the registry side); returns its id.

        Raises `SchemaRegistryUnavailable` on any failure (including 409 incompatible)."""
        payload = {"schema": json.dumps(schema, separators=(",", ":"))}
        response = self._request("POST", f"/subjects/{subject}/versions", json=payload)
        if response.status_code >= 300:
            raise SchemaRegistryUnavailable(
                f"registering subject {subject!r} failed: HTTP {response.status_code} {response.text[:200]}"
            )
        return int(response.json()["id"])

    def _request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        import httpx  # (loaded by __init__: a lookup in sys.modules)

        url = self._base + path
        try:
            response = self._client.request(method, url, json=json, auth=self._auth, headers={"Accept": _CONTENT_TYPE})
        except httpx.HTTPError as exc:
            raise SchemaRegistryUnavailable(f"Schema Registry {self._base} unreachable: {exc!r}") from exc
        if response.status_code in (401, 403):
            raise SchemaRegistryUnavailable(
                f"Schema Registry {self._base} refused our credentials (HTTP {response.status_code})"
            )
        if response.status_code >= 500:
            raise SchemaRegistryUnavailable(f"Schema Registry {self._base} answered HTTP {response.status_code}")
        return response


def registry_client(
    url: str | None, username: str | None = None, password: str | None = None
) -> SchemaRegistryClient | None:
    """The client for the registry at `url` (basic auth when `username` is set), or None without a URL."""
    if not url:
        return None
    return SchemaRegistryClient(url, username=username, password=password)


def registry_from_settings(settings: Settings) -> SchemaRegistryClient | None:
    """The client for `RDC_SCHEMA_REGISTRY_URL` with its credentials, or None when it is not set."""
    password = settings.schema_registry_password.reveal() if settings.schema_registry_password else None
    return registry_client(settings.schema_registry_url, settings.schema_registry_username, password)
