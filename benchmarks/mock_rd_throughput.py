"""Requests/s the mock RD API sustains, measured from another process.

Starts `python -m connector.testing.mock_rd --port 0` as a subprocess, then drives
`POST /platform/events/batch` over keep-alive connections from this process for (a) a 1-event batch
and (b) a ~190 KB batch, with two clients: httpx.AsyncClient (what the connector uses) and a minimal
raw-socket HTTP/1.1 client (cheap on the client side, so the figure is closer to the server's ceiling).
Prints one JSON line per case.

    .venv/bin/python benchmarks/mock_rd_throughput.py [--seconds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import httpx
import orjson

HEADERS = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
PATH = "/platform/events/batch"


def small_body() -> bytes:
    event = {
        "event_type": "CONVERSION",
        "event_family": "CDP",
        "payload": {"conversion_identifier": "bench", "email": "ana@example.com"},
    }
    return orjson.dumps([event])


def large_body(target: int = 190_000) -> bytes:
    """A batch of ECOMMERCE_ORDER_PAID events whose compact JSON is just under `target` bytes."""
    events: list[dict[str, Any]] = []
    while True:
        i = len(events)
        item = {"product_id": f"P{i}", "product_title": "Tee", "price": 129.9, "quantity": 1, "sku": "TEE-M"}
        payload = {
            "email": f"user{i}@example.com",
            "identifier": f"ord-{i}",
            "currency": "BRL",
            "price": 259.8,
            "total_items": 2,
            "line_items": [item, item],
        }
        candidate = [*events, {"event_type": "ECOMMERCE_ORDER_PAID", "event_family": "CDP", "payload": payload}]
        if len(orjson.dumps(candidate)) > target:
            return orjson.dumps(events)
        events = candidate


async def httpx_worker(url: str, body: bytes, deadline: float, counts: list[int]) -> None:
    async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
        while time.perf_counter() < deadline:
            response = await client.post(PATH, content=body)
            counts[0 if response.status_code == 200 else 1] += 1


async def raw_worker(host: str, port: int, body: bytes, deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    request = head + body
    while time.perf_counter() < deadline:
        writer.write(request)
        status_and_headers = await reader.readuntil(b"\r\n\r\n")
        length = int(status_and_headers.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        counts[0 if status_and_headers.startswith(b"HTTP/1.1 200") else 1] += 1
    writer.close()


async def measure(client: str, url: str, body: bytes, seconds: float, connections: int) -> dict[str, Any]:
    counts = [0, 0]
    host, port = url.removeprefix("http://").split(":")
    start = time.perf_counter()
    deadline = start + seconds
    if client == "httpx":
        workers = [httpx_worker(url, body, deadline, counts) for _ in range(connections)]
    else:
        workers = [raw_worker(host, int(port), body, deadline, counts) for _ in range(connections)]
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    return {
        "client": client,
        "body_bytes": len(body),
        "events_per_request": len(orjson.loads(body)),
        "connections": connections,
        "requests_per_s": round(counts[0] / elapsed, 1),
        "events_per_s": round(counts[0] * len(orjson.loads(body)) / elapsed, 1),
        "non_200": counts[1],
    }


def start_mock() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.testing.mock_rd", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"mock did not start: {line!r}")
    return proc, line.split()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    proc, url = start_mock()
    try:
        for name, body in (("small", small_body()), ("large", large_body())):
            for client in ("httpx", "raw"):
                httpx.post(f"{url}/_mock/reset")  # keep the mock's recordings from growing across cases
                result = asyncio.run(measure(client, url, body, args.seconds, args.connections))
                print(json.dumps({"case": name, **result}), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
