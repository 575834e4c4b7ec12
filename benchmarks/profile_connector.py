"""Profile `rd-connector run` end to end with py-spy while it drains a workload (benchmark helper).

Starts the embedded broker and the mock RD API (own process), produces `--count` sample events, runs the
connector as a real process and attaches `py-spy record` (raw collapsed stacks, per thread) until every
event is settled. Prints the top functions by self time and by inclusive time, per thread.

    .venv/bin/pip install py-spy   # once
    .venv/bin/python benchmarks/profile_connector.py [--count 200000] [--out benchmarks/results/profile.txt]
        [--lanes 4 --latency-ms 50 --partitions 3]   # the suite's lane runs
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from suite import ROOT, CommitWatcher, MockProcess, connector_env, stop_process

from connector.commands.sample import generate_messages
from connector.testing.broker import EmbeddedBroker
from connector.testing.kafka_tools import produce_acked


def report(raw: Path, top: int) -> str:
    self_time: collections.Counter[str] = collections.Counter()
    total_time: collections.Counter[str] = collections.Counter()
    by_thread: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        by_thread[frames[0]] += count
        self_time[f"{frames[0].split(' ')[0]} | {frames[-1]}"] += count
        for frame in set(frames[1:]):
            total_time[frame] += count
    lines = [f"{samples} samples (non-idle) at 100 Hz", "", "by thread:"]
    lines += [f"  {n / samples:6.1%}  {name}" for name, n in by_thread.most_common()]
    lines += ["", f"top {top} by self time (thread | frame):"]
    lines += [f"  {n / samples:6.1%}  {name}" for name, n in self_time.most_common(top)]
    lines += ["", f"top {top} by inclusive time:"]
    lines += [f"  {n / samples:6.1%}  {name}" for name, n in total_time.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--lanes", type=int, default=1, help="RDC_MAX_IN_FLIGHT (default 1)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the mock's latency (default 0)")
    parser.add_argument("--partitions", type=int, default=8, help="source partitions (default 8)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "profile.txt"))
    args = parser.parse_args()
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    messages = generate_messages(args.count, seed=7)
    raw = Path(args.out).with_suffix(".raw")
    raw.parent.mkdir(parents=True, exist_ok=True)
    with EmbeddedBroker() as broker:
        mock = MockProcess()
        try:
            topic = broker.unique_topic("prof-src", args.partitions)
            mock.reset(args.latency_ms)
            ends = produce_acked(broker.bootstrap_servers, topic, ((m.key, m.value) for m in messages))
            results, dlq = broker.unique_topic("prof-results"), broker.unique_topic("prof-dlq")
            env = connector_env(broker.bootstrap_servers, topic, "prof", results, dlq, mock.url, args.lanes)
            proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "run"], env=env, cwd=ROOT,
                                    stderr=open(raw.with_suffix(".log"), "w"))  # fmt: skip  # noqa: SIM115
            spy = subprocess.Popen([py_spy, "record", "--pid", str(proc.pid), "--format", "raw", "--threads",
                                    "--rate", "100", "--output", str(raw)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            watcher = CommitWatcher(broker.bootstrap_servers, "prof", topic, ends)
            began = time.monotonic()
            while not watcher.settled() and time.monotonic() - began < 300 and proc.poll() is None:
                time.sleep(0.1)
            print(f"settled in {time.monotonic() - began:.1f} s (including the ~1 s group join)", file=sys.stderr)
            watcher.close()
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
            stop_process(proc)
        finally:
            mock.close()
    text = report(raw, args.top)
    Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
