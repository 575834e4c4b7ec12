"""Profile `rd-connector run` end to end with py-spy while it drains a workload (benchmark helper).

Starts the embedded broker and the mock RD API (own process), produces `--count` sample events, runs the
connector as a real process and attaches `py-spy record --subprocesses` (raw collapsed stacks, per process
and thread: the pipeline process and its decode worker) until every event is settled. Prints the share of
each process and thread and the top functions by self time and by inclusive time.

    .venv/bin/pip install py-spy   # once
    .venv/bin/python benchmarks/profile_connector.py [--count 200000] [--out benchmarks/results/profile.txt]
        [--lanes 4 --latency-ms 50 --partitions 3]   # the suite's lane runs
        [--workload mixed --count 100000 --partitions 3]   # issue 20's mixed workload
        [--connector-env RDC_AVRO_DECODER=cavro]
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

from mixed_workload import generate_mixed
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
        # with --subprocesses the first frame is the process, then the thread
        head = 2 if frames[0].startswith("process ") else 1
        thread = " ".join(f.split(" (")[0].split(":")[0] if i == 0 else f for i, f in enumerate(frames[:head]))
        by_thread[thread] += count
        self_time[f"{thread} | {frames[-1]}"] += count
        for frame in set(frames[head:]):
            total_time[frame] += count
    lines = [f"{samples} samples (non-idle)", "", "by process | thread:"]
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
    parser.add_argument("--workload", choices=("default", "mixed"), default="default")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second (default 100)")
    parser.add_argument("--connector-env", action="append", default=[], metavar="RDC_X=V")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "profile.txt"))
    args = parser.parse_args()
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    messages = generate_mixed(args.count) if args.workload == "mixed" else generate_messages(args.count, seed=7)
    raw = Path(args.out).with_suffix(".raw")
    raw.parent.mkdir(parents=True, exist_ok=True)
    with EmbeddedBroker() as broker:
        mock = MockProcess()
        try:
            topic = broker.unique_topic("prof-src", args.partitions)
            mock.reset(args.latency_ms)
            ends = produce_acked(broker.bootstrap_servers, topic, ((m.key, m.value) for m in messages))
            results, dlq = broker.unique_topic("prof-results"), broker.unique_topic("prof-dlq")
            extra = dict(item.split("=", 1) for item in args.connector_env)
            env = connector_env(broker.bootstrap_servers, topic, "prof", results, dlq, mock.url, args.lanes, **extra)
            proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "run"], env=env, cwd=ROOT,
                                    stderr=open(raw.with_suffix(".log"), "w"))  # fmt: skip  # noqa: SIM115
            spy = subprocess.Popen([py_spy, "record", "--pid", str(proc.pid), "--format", "raw", "--threads",
                                    "--subprocesses", "--rate", str(args.rate), "--output", str(raw)],
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
