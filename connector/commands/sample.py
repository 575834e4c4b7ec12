"""Sample data: realistic mixed e-commerce events (seeded), framed as Kafka values, and a producer CLI.

`generate_records` and `generate_messages` are pure (no I/O, no clock): tests and benchmarks reuse them.
`produce` and `cli` write to Kafka (`rd-connector produce-sample` calls `cli(argv)`).

Framing: single-object encoding by default; Confluent framing when schema ids are given (the CLI
registers the schemas under the TopicRecordNameStrategy subject `{topic}-{record full name}`, since one
topic carries several record types).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from connector.avro.catalog import NAMESPACE, SchemaCatalog, default_catalog
from connector.avro.encoder import Encoder
from connector.avro.registry import SchemaRegistryClient, registry_client

__all__ = [
    "MALFORMED_KINDS",
    "RECORD_KINDS",
    "SampleMessage",
    "cli",
    "generate_messages",
    "generate_records",
    "produce",
    "register_schemas",
]

_N = NAMESPACE + "."
#: record kind -> relative weight in the mix.
RECORD_KINDS: Mapping[str, int] = {
    _N + "CheckoutStarted": 18,
    _N + "CartAbandoned": 10,
    _N + "OrderPlaced": 15,
    _N + "OrderPaid": 15,
    _N + "OrderFulfilled": 10,
    _N + "ShipmentDelivered": 8,
    _N + "OrderCancelled": 4,
    _N + "OrderRefunded": 3,
    _N + "RdEvent": 17,
}
MALFORMED_KINDS = ("garbage", "unknown_fingerprint", "truncated", "removed_event_type", "invalid_email")

_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_FIRST = ("Ana", "Bruno", "Carla", "Diego", "Elisa", "Felipe", "Gabriela", "Heitor", "Isabela", "João")
_LAST = ("Silva", "Souza", "Oliveira", "Santos", "Lima", "Pereira", "Costa", "Almeida")
_CITIES = (("Curitiba", "PR"), ("São Paulo", "SP"), ("Recife", "PE"), ("Porto Alegre", "RS"), ("Belo Horizonte", "MG"))
_PRODUCTS = (
    ("P100", "Camiseta básica algodão", "49.90", ("vestuário", "camisetas")),
    ("P101", "Calça jeans slim", "189.90", ("vestuário", "calças")),
    ("P102", "Tênis de corrida", "399.00", ("calçados", "esporte")),
    ("P103", "Mochila 25L", "229.50", ("acessórios",)),
    ("P104", "Garrafa térmica 1L", "89.90", ("casa", "esporte")),
    ("P105", "Fone bluetooth", "259.80", ("eletrônicos",)),
    ("P106", "Caneca cerâmica", "34.90", ("casa", "cozinha")),
    ("P107", "Livro: Kafka na prática", "119.00", ("livros", "tecnologia")),
    ("P108", "Meia esportiva (3 pares)", "39.90", ("vestuário", "esporte")),
    ("P109", "Relógio digital", "349.90", ("acessórios", "eletrônicos")),
)
_PAYMENTS = ("pix", "credit_card", "boleto", "debit_card")
_LEGAL_TYPES = ("CONSENT", "LEGITIMATE_INTEREST", "PRE_EXISTENT_CONTRACT")


class SampleMessage(NamedTuple):
    """One Kafka message: key, value, the record kind (None for garbage) and the malformation (None: valid)."""

    key: bytes
    value: bytes
    full_name: str | None
    malformed: str | None


class _Gen:
    def __init__(self, seed: int, start_ms: int) -> None:
        self.rng = random.Random(seed)
        self.start_ms = start_ms
        self.n = 0

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def customer(self) -> dict[str, Any]:
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        email = f"{first.lower().replace('ã', 'a')}.{last.lower()}{self.rng.randrange(1000)}@example.com"
        phone = f"+55419{self.rng.randrange(10**7, 10**8)}" if self.rng.random() < 0.6 else None
        return {"email": email, "name": f"{first} {last}", "mobile_phone": phone, "personal_phone": None}

    def common(self) -> dict[str, Any]:
        self.n += 1
        bases = []
        if self.rng.random() < 0.5:
            bases = [{"category": "COMMUNICATIONS", "type": self.rng.choice(_LEGAL_TYPES), "status": "GRANTED"}]
        return {
            "event_id": self.uuid(),
            "occurred_at": self.start_ms + self.n * 1000 + self.rng.randrange(1000),
            "customer": self.customer(),
            "legal_bases": bases,
        }

    def line_items(self) -> list[dict[str, Any]]:
        picks = self.rng.sample(_PRODUCTS, self.rng.choice((1, 2, 3, 3, 4, 5)))
        return [
            {
                "product_id": pid,
                "title": title,
                "sku": f"{pid}-{self.rng.choice('PMG')}",
                "variant_id": None,
                "variant_title": None,
                "product_url": f"https://loja.example.com/p/{pid.lower()}",
                "image_url": f"https://cdn.example.com/img/{pid.lower()}.jpg" if self.rng.random() < 0.7 else None,
                "unit_price": Decimal(price),
                "quantity": self.rng.choice((1, 1, 1, 2, 3)),
                "categories": list(categories),
            }
            for pid, title, price, categories in picks
        ]

    def totals(self, id_field: str, prefix: str) -> dict[str, Any]:
        items = self.line_items()
        ident = f"{prefix}-{self.rng.randrange(10**6)}"
        return {
            **self.common(),
            id_field: ident,
            "currency": "BRL",
            "total": sum((i["unit_price"] * i["quantity"] for i in items), Decimal("0.00")),
            "line_items": items,
        }


def _checkout(g: _Gen, id_field: str, prefix: str) -> dict[str, Any]:
    record = g.totals(id_field, prefix)
    record["checkout_url"] = f"https://loja.example.com/checkout/{record[id_field]}"
    return record


def _order(g: _Gen) -> dict[str, Any]:
    record = g.totals("order_id", "ord")
    city, state = g.rng.choice(_CITIES)
    shipping = {
        "price": Decimal(g.rng.choice(("0.00", "15.00", "24.90"))),
        "city": city,
        "state": state,
        "country": "BR",
    }
    record["shipping"] = shipping
    record["total"] += shipping["price"]
    record["order_url"] = f"https://loja.example.com/pedidos/{record['order_id']}"
    record["payment_methods"] = [g.rng.choice(_PAYMENTS)]
    return record


def _shipment(g: _Gen, tracking: bool) -> dict[str, Any]:
    record = {**g.common(), "shipment_id": f"shp-{g.rng.randrange(10**6)}", "order_id": f"ord-{g.rng.randrange(10**6)}"}
    if tracking:
        code = f"BR{g.rng.randrange(10**9):09d}"
        record.update(
            tracking_company="Correios", tracking_code=code, tracking_url=f"https://rastreio.example.com/{code}"
        )
    return record


def _rd_event(g: _Gen) -> dict[str, Any]:
    common = g.common()
    email, name = common["customer"]["email"], common["customer"]["name"]
    kind = g.rng.choice(
        ("CONVERSION", "OPPORTUNITY", "SALE", "CHAT_STARTED", "CALL_FINISHED", "MEDIA_PLAYBACK_STARTED")
    )
    payload: dict[str, Any] = {"email": email, "name": name}
    extras: dict[str, dict[str, Any]] = {
        "CONVERSION": {"conversion_identifier": "newsletter", "tags": ["kafka", "sample"]},
        "OPPORTUNITY": {"funnel_name": "default"},
        "SALE": {"funnel_name": "default", "value": round(g.rng.uniform(50, 900), 2)},
        "CHAT_STARTED": {
            "chat_subject": "Dúvida sobre entrega",
            "cf_chat_status": "open",
            "cf_chat_type": "whatsapp",
        },
        "CALL_FINISHED": {"call_from_number": "+554133334444", "call_status": "answered", "call_duration": "95"},
        "MEDIA_PLAYBACK_STARTED": {"media_type": "video", "media_identifier": "webinar-42", "media_duration": 3600},
    }
    payload.update(extras[kind])
    return {
        "event_id": common["event_id"],
        "occurred_at": common["occurred_at"],
        "event_type": kind,
        "payload_json": orjson.dumps(payload).decode(),
    }


def _record(g: _Gen, full_name: str) -> dict[str, Any]:
    short = full_name.rpartition(".")[2]
    if short in ("CheckoutStarted", "CartAbandoned"):
        return _checkout(g, *(("checkout_id", "chk") if short == "CheckoutStarted" else ("cart_id", "cart")))
    if short in ("OrderPlaced", "OrderPaid"):
        return _order(g)
    if short in ("OrderFulfilled", "ShipmentDelivered"):
        record = _shipment(g, tracking=short == "OrderFulfilled")
        return record
    if short == "OrderCancelled":
        return {
            **g.common(),
            "order_id": f"ord-{g.rng.randrange(10**6)}",
            "cancel_reason": g.rng.choice(("CUSTOMER", "INVENTORY", "OTHER")),
        }
    if short == "OrderRefunded":
        return {**g.common(), "order_id": f"ord-{g.rng.randrange(10**6)}", "currency": "BRL", "total": Decimal("49.90")}
    return _rd_event(g)


def generate_records(count: int, *, seed: int = 0, start_ms: int = _START_MS) -> Iterator[tuple[str, dict[str, Any]]]:
    """`count` (record full name, record) pairs, a realistic mix of all 9 input kinds (logical values:
    `Decimal` money, int millis, str uuids). Same seed, same records."""
    g = _Gen(seed, start_ms)
    kinds, weights = list(RECORD_KINDS), list(RECORD_KINDS.values())
    for _ in range(count):
        full_name = g.rng.choices(kinds, weights)[0]
        yield full_name, _record(g, full_name)


def _malformed(g: _Gen, kind: str, encoder: Encoder, frame: _Framer) -> SampleMessage:
    key = b"malformed"
    if kind == "garbage":
        return SampleMessage(key, b"\x7f" + g.rng.randbytes(g.rng.randrange(1, 64)), None, kind)
    if kind == "removed_event_type":
        record = _rd_event(g)
        record["event_type"] = g.rng.choice(("ORDER_PLACED", "CART_ABANDONED"))
        return SampleMessage(key, frame(_N + "RdEvent", record), _N + "RdEvent", kind)
    record = _checkout(g, "checkout_id", "chk")
    if kind == "invalid_email":
        record["customer"]["email"] = "not-an-email"
        return SampleMessage(key, frame(_N + "CheckoutStarted", record), _N + "CheckoutStarted", kind)
    value = frame(_N + "CheckoutStarted", record)
    if kind == "truncated":
        return SampleMessage(key, value[: len(value) // 2], _N + "CheckoutStarted", kind)
    body = encoder.plain(_N + "CheckoutStarted", record)
    return SampleMessage(key, b"\xc3\x01" + g.rng.randbytes(8) + body, None, kind)  # unknown_fingerprint


class _Framer:
    def __init__(self, encoder: Encoder, schema_ids: Mapping[str, int] | None) -> None:
        self.encoder = encoder
        self.schema_ids = schema_ids

    def __call__(self, full_name: str, record: dict[str, Any]) -> bytes:
        if self.schema_ids is None:
            return self.encoder.single_object(full_name, record)
        return self.encoder.confluent(self.schema_ids[full_name], full_name, record)


def _key(full_name: str, record: Mapping[str, Any]) -> bytes:
    if "customer" in record:
        return str(record["customer"]["email"]).encode()
    return str(orjson.loads(record["payload_json"]).get("email", "")).encode()


def generate_messages(
    count: int,
    *,
    seed: int = 0,
    malformed: int = 0,
    schema_ids: Mapping[str, int] | None = None,
    catalog: SchemaCatalog | None = None,
    start_ms: int = _START_MS,
) -> list[SampleMessage]:
    """`count` Kafka messages of which `malformed` are bad (cycling through `MALFORMED_KINDS`, at seeded
    random positions). Single-object framing, or Confluent framing with `schema_ids` (full name -> id)."""
    encoder = Encoder(catalog or default_catalog())
    frame = _Framer(encoder, schema_ids)
    g = _Gen(seed ^ 0x5EED, start_ms)
    bad_at = set(g.rng.sample(range(count), min(malformed, count)))
    good = generate_records(count, seed=seed, start_ms=start_ms)
    messages: list[SampleMessage] = []
    bad = 0
    for i in range(count):
        if i in bad_at:
            messages.append(_malformed(g, MALFORMED_KINDS[bad % len(MALFORMED_KINDS)], encoder, frame))
            bad += 1
        else:
            full_name, record = next(good)
            messages.append(SampleMessage(_key(full_name, record), frame(full_name, record), full_name, None))
    return messages


def register_schemas(
    registry: SchemaRegistryClient, topic: str, catalog: SchemaCatalog | None = None
) -> dict[str, int]:
    """Register every input record schema under `{topic}-{full name}`; returns full name -> schema id."""
    catalog = catalog or default_catalog()
    return {name: registry.register(f"{topic}-{name}", catalog[name].definition) for name in RECORD_KINDS}


def produce(messages: Sequence[SampleMessage], *, bootstrap_servers: str, topic: str, rate: float = 0.0) -> int:
    """Write `messages` to `topic` (at `rate` messages/s; 0: as fast as possible). Blocks until all are
    acknowledged; returns the number of delivery failures."""
    from connector.ops.kafka_clients import new_producer

    failures = [0]

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures[0] += 1

    producer = new_producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 20})
    started = time.monotonic()
    for i, message in enumerate(messages):
        if rate > 0:
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
        while True:
            try:
                producer.produce(topic, message.value, message.key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    return failures[0] + int(remaining)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rd-connector produce-sample", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", default=os.environ.get("RDC_KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s, 0 = as fast as possible")
    parser.add_argument("--schema-registry-url", help="Confluent framing: register schemas there")
    parser.add_argument("--schema-registry-username")
    parser.add_argument("--schema-registry-password")
    parser.add_argument("--malformed", type=int, default=0, help="how many of --count are malformed")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def cli(argv: list[str] | None = None) -> int:
    """`rd-connector produce-sample`: 0 when every message was acknowledged, 1 otherwise, 2 on bad usage."""
    args = _parser().parse_args(argv)
    if not args.bootstrap_servers:
        print("produce-sample: --bootstrap-servers (or RDC_KAFKA_BOOTSTRAP_SERVERS) is required", file=sys.stderr)
        return 2
    schema_ids = None
    registry = registry_client(args.schema_registry_url, args.schema_registry_username, args.schema_registry_password)
    if registry is not None:
        with registry:
            schema_ids = register_schemas(registry, args.topic)
    start_ms = int(time.time() * 1000)
    messages = generate_messages(
        args.count, seed=args.seed, malformed=args.malformed, schema_ids=schema_ids, start_ms=start_ms
    )
    failures = produce(messages, bootstrap_servers=args.bootstrap_servers, topic=args.topic, rate=args.rate)
    print(f"produce-sample topic={args.topic} sent={len(messages) - failures} failed={failures}")
    return 0 if failures == 0 else 1
