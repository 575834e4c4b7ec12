"""A tiny Schema-Registry-compatible HTTP server for tests and the demo (loopback only).

Serves `GET /schemas/ids/{id}`, `GET /subjects/{subject}/versions/latest` and `POST /subjects/{subject}/versions`
(same schema text -> same id),
with optional basic auth. `fail_with` makes every answer that HTTP status (to test registry outages).

    with FakeSchemaRegistry(username="u", password="p") as registry:
        client = SchemaRegistryClient(registry.url, username="u", password="p")
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

__all__ = ["FakeSchemaRegistry"]

_SCHEMA_BY_ID = re.compile(r"^/schemas/ids/(\d+)$")
_REGISTER = re.compile(r"^/subjects/([^/]+)/versions$")
_LATEST = re.compile(r"^/subjects/([^/]+)/versions/latest$")


class FakeSchemaRegistry:
    """Schema Registry fake on 127.0.0.1 (random port) in a daemon thread. `requests` counts GETs by id."""

    def __init__(self, *, username: str | None = None, password: str | None = None) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.requests: dict[int, int] = {}
        self.fail_with: int | None = None
        self._auth = None if username is None else "Basic " + _b64(f"{username}:{password or ''}")
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeSchemaRegistry:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeSchemaRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def register(self, subject: str, schema_text: str) -> int:
        """Register directly (no HTTP); same text -> same id."""
        with self._lock:
            known = [i for i, text in self.schemas.items() if text == schema_text]
            schema_id = known[0] if known else len(self.schemas) + 1
            self.schemas[schema_id] = schema_text
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def authorized(self, header: str | None) -> bool:
        return self._auth is None or header == self._auth


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _handler_for(registry: FakeSchemaRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _refused(self) -> bool:
            if registry.fail_with is not None:
                self._send(registry.fail_with, {"error_code": registry.fail_with, "message": "failing on purpose"})
                return True
            if not registry.authorized(self.headers.get("Authorization")):
                self._send(401, {"error_code": 401, "message": "Unauthorized"})
                return True
            return False

        def do_GET(self) -> None:
            if self._refused():
                return
            latest = _LATEST.match(self.path)
            if latest is not None:
                versions = registry.subjects.get(unquote(latest.group(1)))
                if not versions:
                    self._send(404, {"error_code": 40401, "message": "Subject not found"})
                else:
                    subject, schema_id = unquote(latest.group(1)), versions[-1]
                    body = {"subject": subject, "version": len(versions), "id": schema_id}
                    self._send(200, {**body, "schema": registry.schemas[schema_id]})
                return
            match = _SCHEMA_BY_ID.match(self.path)
            if match is None:
                self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
                return
            schema_id = int(match.group(1))
            registry.requests[schema_id] = registry.requests.get(schema_id, 0) + 1
            text = registry.schemas.get(schema_id)
            if text is None:
                self._send(404, {"error_code": 40403, "message": "Schema not found"})
            else:
                self._send(200, {"schema": text})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self._refused():
                return
            match = _REGISTER.match(self.path)
            try:
                schema_text = json.loads(body)["schema"]
                json.loads(schema_text)
            except (ValueError, KeyError, TypeError):
                self._send(422, {"error_code": 42201, "message": "Invalid schema"})
                return
            if match is None:
                self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
                return
            self._send(200, {"id": registry.register(match.group(1), schema_text)})

    return Handler
