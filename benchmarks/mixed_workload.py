"""The "mixed" benchmark workload of issue 20: an order-heavy e-commerce stream, seeded and pure.

70 % orders (`OrderPlaced` and `OrderPaid` in equal shares, 2-4 line items, 3 on average, each with an image and
30 % of them with a variant), the other 30 % the other bundled kinds in the sample mix's
proportions (`connector.commands.sample.RECORD_KINDS`). Single-object framing, like `produce-sample`.
`describe()` gives the mean Avro value and the mean RD JSON event (what the connector sends per event),
which the suite prints.

    .venv/bin/python benchmarks/mixed_workload.py --count 10000   # print the means
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from typing import Any

from connector.avro import Decoder, default_catalog
from connector.avro.catalog import NAMESPACE
from connector.avro.encoder import Encoder
from connector.commands import sample
from connector.commands.sample import SampleMessage
from connector.errors import RecordError
from connector.mapping import encode_event, map_record

ORDER_SHARE = 0.70
_N = NAMESPACE + "."
_ORDERS = (_N + "OrderPlaced", _N + "OrderPaid")
_OTHERS = {name: weight for name, weight in sample.RECORD_KINDS.items() if name not in _ORDERS}
_VARIANTS = ("Tamanho P / Azul-marinho", "Tamanho M / Preto", "Tamanho G / Branco", "Único / Natural", "42 / Cinza")


class _MixedGen(sample._Gen):  # benchmark only: reuses the sample generator's records (a private helper)
    def line_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        picks = self.rng.sample(sample._PRODUCTS, self.rng.choice((2, 3, 3, 4)))
        for pid, title, price, categories in picks:
            with_variant = self.rng.random() < 0.3
            items.append(
                {
                    "product_id": pid,
                    "title": title,
                    "sku": f"{pid}-{self.rng.choice('PMG')}",
                    "variant_id": f"{pid}-v{self.rng.randrange(100)}" if with_variant else None,
                    "variant_title": self.rng.choice(_VARIANTS) if with_variant else None,
                    "product_url": f"https://loja.example.com/p/{pid.lower()}",
                    "image_url": f"https://cdn.example.com/img/{pid.lower()}.jpg",
                    "unit_price": Decimal(price),
                    "quantity": self.rng.choice((1, 1, 1, 2, 3)),
                    "categories": list(categories),
                }
            )
        return items


def generate_mixed(count: int, *, seed: int = 20) -> list[SampleMessage]:
    """`count` messages: 70 % orders of ~3 line items, the rest the other bundled kinds. Same seed, same messages."""
    g = _MixedGen(seed, sample._START_MS)
    frame = sample._Framer(Encoder(default_catalog()), None)
    others, weights = list(_OTHERS), list(_OTHERS.values())
    messages = []
    for _ in range(count):
        order = g.rng.random() < ORDER_SHARE
        full_name = g.rng.choice(_ORDERS) if order else g.rng.choices(others, weights)[0]
        record = sample._record(g, full_name)
        messages.append(SampleMessage(sample._key(full_name, record), frame(full_name, record), full_name, None))
    return messages


def describe(messages: list[SampleMessage], sample_size: int = 5000) -> dict[str, float]:
    """Mean Avro value bytes (all messages) and mean RD JSON event bytes (the first `sample_size`)."""
    decode = Decoder(default_catalog()).decode
    json_bytes = [0, 0]
    for message in messages[:sample_size]:
        try:
            json_bytes[0] += len(encode_event(map_record(*decode(message.value, "mixed"))))
            json_bytes[1] += 1
        except RecordError:
            pass
    orders = sum(1 for m in messages if m.full_name in _ORDERS)
    return {
        "mean_value_bytes": round(sum(len(m.value) for m in messages) / len(messages), 1),
        "mean_rd_json_bytes": round(json_bytes[0] / max(json_bytes[1], 1), 1),
        "order_share": round(orders / len(messages), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args(argv)
    print(json.dumps(describe(generate_mixed(args.count, seed=args.seed))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
