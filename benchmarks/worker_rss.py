"""Resident memory of one decode worker process (`RDC_DECODE_WORKERS`): VmRSS and VmHWM (its peak) from
/proc, once it has built its decoder and mappings, and again after it transformed `--batches` batches of
`--size` mixed records (`mixed_workload.py`), submitted as the pipeline does (one batch ahead).

    .venv/bin/python benchmarks/worker_rss.py --batches 20 --size 1000
    PYTHONPATH=. /work/main/.venv/bin/python benchmarks/worker_rss.py   # in another worktree: its code

A spawned worker runs its parent's main module first (as `__mp_main__`: the `rd-connector` script, which
imports only `connector.cli`): so this script imports everything else inside `measure()`, and the worker
imports what a worker of `rd-connector run` imports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import connector.cli  # as the rd-connector script: a worker imports this module as its main


def memory_mib(pid: int) -> dict[str, float]:
    """VmHWM (peak), VmRSS, and its anonymous and file-backed parts, of a live process, MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: round(int(fields[key].split()[0]) / 1024, 1) for key in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}


def measure(batches: int, size: int) -> dict[str, dict[str, float]]:
    """The worker's memory once started, and after `batches` batches of `size` records."""
    from connector.transform.process import DecoderSpec, WorkerProcess

    sys.path.insert(0, str(Path(__file__).parent))
    from mixed_workload import generate_mixed

    work = [("mixed", message.value) for message in generate_mixed(size)]
    worker = WorkerProcess(DecoderSpec(log=("INFO", "kv")))
    pid = worker._process.pid  # benchmark only
    assert pid is not None
    try:
        worker.submit([])
        worker.collect()  # the worker has built its decoder and mappings
        result = {"started": memory_mib(pid)}
        worker.submit(work)
        for _ in range(batches - 1):
            worker.submit(work)
            worker.collect()
        worker.collect()
        result["after_load"] = memory_mib(pid)
        return result
    finally:
        worker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--size", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps({"connector": str(Path(connector.cli.__file__).parent), **measure(args.batches, args.size)}))


if __name__ == "__main__":
    main()
