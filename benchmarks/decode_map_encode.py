"""decode + map + encode records/s for a 3-line-item OrderPaid, per framing and decoding mode.

Run: `.venv/bin/python benchmarks/decode_map_encode.py [--records N] [--repeat R]`. Prints one JSON line
per case (machine-readable) and a small table. Single core, no I/O: the CPU cost per record of the
connector's hot path. "raw" decodes without fastavro's logical-type conversions (the default: decimals
go from their scaled integer straight to a float); "logical" lets fastavro build Decimal/datetime/UUID.
"""

from __future__ import annotations

import argparse
import json
import time
from decimal import Decimal
from typing import Any

from connector.avro import NAMESPACE, Decoder, Encoder, default_catalog
from connector.mapping import encode_event, map_record

FULL_NAME = f"{NAMESPACE}.OrderPaid"


def order_paid() -> dict[str, Any]:
    items = [
        {
            "product_id": f"P10{i}",
            "title": title,
            "sku": f"P10{i}-M",
            "variant_id": None,
            "variant_title": None,
            "product_url": f"https://loja.example.com/p/p10{i}",
            "image_url": f"https://cdn.example.com/img/p10{i}.jpg",
            "unit_price": Decimal(price),
            "quantity": quantity,
            "categories": ["vestuário", "esporte"],
        }
        for i, (title, price, quantity) in enumerate(
            [("Camiseta básica", "49.90", 2), ("Tênis de corrida", "399.00", 1), ("Meia (3 pares)", "39.90", 3)]
        )
    ]
    return {
        "event_id": "6f1c1d52-7c5b-4e0e-9a57-3c8a4e1d0b11",
        "occurred_at": 1_767_225_600_000,
        "customer": {
            "email": "ana.silva@example.com",
            "name": "Ana Silva",
            "mobile_phone": "+5541999990000",
            "personal_phone": None,
        },
        "legal_bases": [{"category": "COMMUNICATIONS", "type": "CONSENT", "status": "GRANTED"}],
        "order_id": "ord-1001",
        "currency": "BRL",
        "total": Decimal("633.50"),
        "line_items": items,
        "shipping": {"price": Decimal("15.00"), "city": "Curitiba", "state": "PR", "country": "BR"},
        "order_url": "https://loja.example.com/pedidos/ord-1001",
        "payment_methods": ["pix"],
    }


class _OneSchema:
    def get_schema(self, schema_id: int) -> dict[str, Any]:
        return default_catalog()[FULL_NAME].definition


def run(value: bytes, decoder: Decoder, records: int, repeat: int) -> tuple[float, float]:
    """Best records/s over `repeat` runs of `records` records, and the decode-only share (%)."""
    decode = decoder.decode
    best = best_decode = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(records):
            encode_event(map_record(*decode(value, "orders")))
        best = min(best, time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(records):
            decode(value, "orders")
        best_decode = min(best_decode, time.perf_counter() - started)
    return records / best, 100 * best_decode / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    catalog, record = default_catalog(), order_paid()
    encoder = Encoder(catalog)
    framings = {
        "single_object": encoder.single_object(FULL_NAME, record),
        "confluent": encoder.confluent(1, FULL_NAME, record),
    }
    sent = encode_event(map_record(FULL_NAME, record))
    for framing, value in framings.items():
        for mode in ("raw", "logical"):
            decoder = Decoder(catalog, registry=_OneSchema(), logical_types=mode == "logical")
            rate, decode_share = run(value, decoder, args.records, args.repeat)
            print(
                json.dumps(
                    {
                        "benchmark": "decode_map_encode",
                        "record": "OrderPaid(3 line items)",
                        "framing": framing,
                        "decoding": mode,
                        "value_bytes": len(value),
                        "json_bytes": len(sent),
                        "records_per_s": round(rate),
                        "us_per_record": round(1e6 / rate, 2),
                        "decode_share_pct": round(decode_share, 1),
                    }
                )
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
