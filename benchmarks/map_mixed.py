"""Per-record cost of `Mappings.map` (with RD's checks), of `encode_event`, and of the reference checks alone
(`check_payload`), on issue 20's mixed workload (`mixed_workload.py`), decoded once beforehand.

Run from the checkout's root: `.venv/bin/python -m benchmarks.map_mixed [--count N] [--repeat R]` (as a script,
`benchmarks/` comes first on sys.path and an installed `connector` may be the one imported). Prints one JSON
line: microseconds per record, the best of `R` turns of each loop (alternating within each turn). No I/O.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

try:
    from mixed_workload import generate_mixed  # run as a script: benchmarks/ is on sys.path
except ImportError:  # imported as benchmarks.map_mixed
    from benchmarks.mixed_workload import generate_mixed

from connector.avro import Decoder, default_catalog
from connector.mapping import bundled_mappings, encode_event
from connector.mapping.event import RdEvent
from connector.mapping.trim_and_refuse import check_payload


def loops(count: int) -> dict[str, Callable[[], None]]:
    """The timed loops over `count` mixed records: map, map + encode, check alone."""
    decoder, mappings = Decoder(default_catalog()), bundled_mappings()
    records = [decoder.decode_typed(m.value, "mixed") for m in generate_mixed(count)]
    mapped = mappings.map
    events: list[tuple[str, dict[str, Any]]] = []
    for full_name, record, schema in records:  # the mixed workload has no record to refuse
        event = mapped(full_name, record, schema, "mixed")
        if isinstance(event, RdEvent):
            events.append((event.event_type, event.payload))

    def map_only() -> None:
        for full_name, record, schema in records:
            mapped(full_name, record, schema, "mixed")

    def map_encode() -> None:
        for full_name, record, schema in records:
            event = mapped(full_name, record, schema, "mixed")
            if isinstance(event, RdEvent):
                encode_event(event)

    def reference_check() -> None:  # `check_payload`, what every payload cost before `compile_check`
        for event_type, payload in events:
            check_payload(event_type, payload)

    return {"map": map_only, "map_encode": map_encode, "reference_check": reference_check}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    timed = loops(args.count)
    best = dict.fromkeys(timed, float("inf"))
    for _ in range(args.repeat):
        for name, loop in timed.items():
            started = time.perf_counter()
            loop()
            best[name] = min(best[name], (time.perf_counter() - started) / args.count)
    line = {"benchmark": "map_mixed", "records": args.count}
    line.update({f"{name}_us": round(1e6 * seconds, 3) for name, seconds in best.items()})
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
