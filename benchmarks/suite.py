"""rd-connector benchmark suite (`make bench`): one run, one broker, one workload, every scenario side by side.

Starts the embedded broker (Tansu) and the mock RD API (in its own process, so its validation does not
share the driver's GIL), produces the workload once, then measures:

1. ceiling      consume + decode + map + encode, no HTTP (benchmarks/ceiling.py, `assign()`, no group)
2. connector    `python -m connector.cli run` end to end, mock latency 0, 1 lane (default) and 4 lanes
3. lanes        the same with mock latency 50 ms, RDC_MAX_IN_FLIGHT=1 and =4, on a topic of its own
                (--lanes-partitions, default 3: fewer partitions than lanes; --lanes-count events, default all)
4. peer         the same job as a Quix Streams app (benchmarks/peers/quix_peer.py, its own venv)
5. latency      produce -> RD acceptance per event at a low constant rate (in-process mock)
6. (--rss-million) peak RSS of the connector while draining 1,000,000 events

Each connector/peer run uses a fresh consumer group (and fresh results/DLQ topics) on the same source topic.
events/s = events / (settled_at - started_at), where started_at is the moment the connector logs its
partition assignment (the peer: its first record reaches the dataframe) and settled_at is the first poll
(every 50 ms) at which the group's committed offsets equal the end offsets acknowledged at produce time.
So the group join (~1 s on Tansu) and process start-up are excluded; commit lag is included.

Prints one JSON document (stdout) and then a table. Options: --help.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition
from mixed_workload import describe, generate_mixed

from connector.commands.sample import SampleMessage, generate_messages
from connector.deliver.lanes import place
from connector.testing.broker import FAST_JOIN_CONSUMER, EmbeddedBroker, delete_topics
from connector.testing.kafka_tools import produce_acked, read_topic

ROOT = Path(__file__).resolve().parent.parent
PEER_PYTHON = ROOT / "benchmarks" / ".venv-quix" / "bin" / "python"
CAP = 200_000
LINGER_MS = 1000


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- mock RD API in its own process -------------------------------------------------------------------


class MockProcess:
    """`python -m connector.testing.mock_rd --port 0`, driven through its /_mock control plane."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            # Envelopes are still checked; the payload rules (~10 ms of the mock's one thread per full batch) would
            # make the mock, not the connector or the peer, the bottleneck of every run.
            [sys.executable, "-m", "connector.testing.mock_rd", "--port", "0", "--no-validate-payloads"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"mock RD did not start: {line!r}")
        self.url = line.split()[-1]
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def reset(self, latency_ms: float = 0.0) -> None:
        self.http.post("/_mock/reset").raise_for_status()
        self.http.post("/_mock/config", json={"latency_ms": latency_ms}).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self.http.get("/_mock/stats")
        response.raise_for_status()
        return dict(response.json())

    def close(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- helpers --------------------------------------------------------------------------------------------


class CommitWatcher:
    """Reads a group's committed offsets with one long-lived consumer that never joins the group."""

    def __init__(self, bootstrap: str, group: str, topic: str, ends: dict[int, int]) -> None:
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        self._tps = [TopicPartition(topic, p) for p in sorted(ends)]
        self._ends = ends

    def settled(self) -> bool:
        try:
            committed = self._consumer.committed(self._tps, timeout=5)
        except Exception:  # a slow coordinator answer: try again at the next poll
            return False
        return all(tp.offset >= self._ends[tp.partition] for tp in committed)

    def close(self) -> None:
        self._consumer.close()


def vm_hwm_mib(pid: int) -> float | None:
    """Peak resident set size (VmHWM) of a live process plus that of each of its descendants (the decode
    worker), MiB. The peaks need not coincide, so the sum is an upper bound of the peak of the whole."""
    total = None
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total = int(line.split()[1]) / 1024
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total = (total or 0.0) + (vm_hwm_mib(int(child)) or 0.0)
    return total


def cpu_s(pid: int | None, children: bool = False) -> float:
    """User + system CPU seconds of a live process (and, with `children`, of its direct children)."""
    if pid is None:
        return 0.0
    total = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    if children:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                for child in (task / "children").read_text().split():
                    total += cpu_s(int(child), children=True)
    return total


def thread_cpu_s(pid: int, prefix: str = "") -> dict[str, float]:
    """CPU seconds per thread of a live process and of its descendants (the decode worker), by thread name
    (`worker:` before a child's threads), threads of one name summed: where a run's CPU went."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                name = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                key = prefix + name
                out[key] = round(out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick, 2)
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    for key, value in thread_cpu_s(int(child), prefix + "worker:").items():
                        out[key] = round(out.get(key, 0.0) + value, 2)
    return out


class LineReader(threading.Thread):
    """Reads a child's pipe, timestamps the first line containing `marker`, keeps the last lines."""

    def __init__(self, stream: Any, marker: str, parse_time: Callable[[str], float] | None = None) -> None:
        super().__init__(daemon=True)
        self.stream, self.marker, self.parse_time = stream, marker, parse_time
        self.marked_at: float | None = None
        self.marked = threading.Event()
        self.tail: list[str] = []
        self.warnings: list[str] = []

    def run(self) -> None:
        log_file = os.environ.get("BENCH_LOG")  # experiments: append every child's log lines to this file
        with open(log_file or os.devnull, "a") as dump:
            for line in self.stream:
                dump.write(line)
                self._line(line)

    def _line(self, line: str) -> None:
        if self.marked_at is None and self.marker in line:
            self.marked_at = self.parse_time(line) if self.parse_time else time.monotonic()
            self.marked.set()
        problem = "level=WARNING" in line or "level=ERROR" in line or "Traceback" in line
        if problem and len(self.warnings) < 50:
            self.warnings.append(line.rstrip())
        self.tail.append(line.rstrip())
        if len(self.tail) > 40:
            del self.tail[:20]


def stop_process(proc: subprocess.Popen[Any], timeout: float = 40.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9


def connector_env(
    bootstrap: str, topic: str, group: str, results: str, dlq: str, rd_url: str, lanes: int, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RDC_")}
    env.update(
        {
            "RDC_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RDC_TOPICS": topic,
            "RDC_GROUP_ID": group,
            "RDC_RESULTS_TOPIC": results,
            "RDC_DLQ_TOPIC": dlq,
            "RDC_RD_BASE_URL": rd_url,
            "RDC_RD_ACCESS_TOKEN": "bench-token",
            "RDC_MAX_IN_FLIGHT": str(lanes),
            "RDC_LOG_LEVEL": "INFO",
            # The mock has no rate limit; RD's real budget (default 120/min) would make this a benchmark of it.
            "RDC_RD_REQUESTS_PER_MINUTE": "0",
            **{f"RDC_KAFKA__{k.upper().replace('.', '_')}": str(v) for k, v in FAST_JOIN_CONSUMER.items()},
            **extra,
        }
    )
    return env


@dataclass
class Run:
    """One measured run of the connector or of the peer."""

    name: str
    events: int
    ok: bool = False
    events_per_s: float | None = None
    seconds: float | None = None
    join_s: float | None = None
    exit_code: int | None = None
    peak_rss_mib: float | None = None
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds during the run, per process
    cpu_threads: dict[str, float] = field(default_factory=dict)  # CPU seconds of the measured process, per thread
    requests: int | None = None
    accepted: int | None = None
    body_mean: float | None = None
    body_max: int | None = None
    non_200: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def settle_loop(
    proc: subprocess.Popen[Any], watcher: CommitWatcher, started: threading.Event, timeout: float
) -> float | None:
    """Wait for the start marker, then poll every 50 ms until settled; returns the settle time."""
    deadline = time.monotonic() + timeout
    while not started.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            return None
    while time.monotonic() < deadline:
        if watcher.settled():
            return time.monotonic()
        if proc.poll() is not None:
            return None
        time.sleep(0.05)
    return None


def fill_mock_stats(run: Run, stats: dict[str, Any]) -> None:
    run.requests = int(stats["requests"])
    run.accepted = int(stats["accepted_events"])
    run.body_mean = float(stats["body_bytes_mean"])
    run.body_max = int(stats["body_bytes_max"])
    run.non_200 = {k: v for k, v in stats["requests_by_status"].items() if k != "200"}


# -- the scenarios --------------------------------------------------------------------------------------


class Bench:
    def __init__(self, broker: EmbeddedBroker, mock: MockProcess, args: argparse.Namespace) -> None:
        self.broker, self.mock, self.args = broker, mock, args
        self.bootstrap = broker.bootstrap_servers

    def others_cpu(self) -> tuple[float, float]:
        return cpu_s(self.mock.proc.pid), cpu_s(self.broker.watchdog_pid, children=True)

    def record_resources(self, run: Run, pid: int, others_before: tuple[float, float]) -> None:
        """Peak RSS and CPU seconds of the measured process with its children (the decode worker), and the
        CPU the mock and the broker spent since `others_before`."""
        run.peak_rss_mib = vm_hwm_mib(pid)
        run.cpu_threads = thread_cpu_s(pid)
        mock_cpu, broker_cpu = self.others_cpu()
        run.cpu_s = {
            "self": round(cpu_s(pid, children=True), 2),
            "mock_rd": round(mock_cpu - others_before[0], 2),
            "broker": round(broker_cpu - others_before[1], 2),
        }

    def produce(self, prefix: str, messages: Sequence[SampleMessage], partitions: int) -> tuple[str, dict[int, int]]:
        topic = self.broker.unique_topic(prefix, partitions)
        began = time.monotonic()
        ends = produce_acked(self.bootstrap, topic, ((m.key, m.value) for m in messages))
        took = time.monotonic() - began
        log(f"produced {len(messages):,} events to {topic} ({partitions} partitions) in {took:.1f} s")
        return topic, ends

    def ceiling(self, topic: str, partitions: int, count: int) -> dict[str, Any]:
        cmd = [sys.executable, str(ROOT / "benchmarks" / "ceiling.py"), "--bootstrap", self.bootstrap,
               "--topic", topic, "--partitions", str(partitions), "--count", str(count)]  # fmt: skip
        decoder = dict(item.split("=", 1) for item in self.args.connector_env).get("RDC_AVRO_DECODER")
        if decoder:  # the ceiling decodes as the connector runs do (the peer's venv has fastavro only)
            cmd += ["--avro-decoder", decoder]
        # PYTHONPATH: this checkout's `connector`, not the one an editable install of another checkout maps
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"ceiling failed: {out.stderr[-2000:]}")
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    def connector(
        self,
        name: str,
        topic: str,
        ends: dict[int, int],
        *,
        lanes: int,
        latency_ms: float,
        timeout: float = 300,
        variant: Sequence[str] = (),
    ) -> Run:
        extra = dict(item.split("=", 1) for item in [*self.args.connector_env, *variant])
        count = sum(ends.values())
        run = Run(name, count)
        self.mock.reset(latency_ms)
        results, dlq = self.broker.unique_topic("bench-results"), self.broker.unique_topic("bench-dlq")
        group = f"bench-{uuid.uuid4().hex[:10]}"
        env = connector_env(self.bootstrap, topic, group, results, dlq, self.mock.url, lanes, **extra)
        others_before = self.others_cpu()
        spawned = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "run"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        reader = LineReader(proc.stderr, "assigned partitions=")
        reader.start()
        watcher = CommitWatcher(self.bootstrap, group, topic, ends)
        try:
            settled_at = settle_loop(proc, watcher, reader.marked, timeout)
            self.record_resources(run, proc.pid, others_before)
        finally:
            run.exit_code = stop_process(proc)
            watcher.close()
            reader.join(5)
        fill_mock_stats(run, self.mock.stats())
        run.warnings = reader.warnings
        if settled_at is not None and reader.marked_at is not None:
            run.ok = run.exit_code == 0 and run.accepted is not None and run.accepted >= count
            run.seconds = settled_at - reader.marked_at
            run.join_s = reader.marked_at - spawned
            run.events_per_s = count / run.seconds
        else:
            run.error = "not settled in time; stderr tail: " + " | ".join(reader.tail[-10:])
        with contextlib.suppress(Exception):
            delete_topics(self.bootstrap, [results, dlq])
        log(f"{name}: {_fmt_rate(run.events_per_s)} ev/s, {run.seconds or 0:.2f} s, join {run.join_s or 0:.2f} s, "
            f"RSS {run.peak_rss_mib or 0:.0f} MiB, {run.requests} req, exit {run.exit_code}"
            + ("" if run.ok else f" NOT OK {run.error or ''} accepted={run.accepted}"))  # fmt: skip
        return run

    def peer(self, name: str, topic: str, ends: dict[int, int], timeout: float = 300) -> Run:
        count = sum(ends.values())
        run = Run(name, count)
        if not PEER_PYTHON.exists():
            run.error = f"{PEER_PYTHON} missing (make bench creates it)"
            return run
        self.mock.reset(0)
        group = f"bench-quix-{uuid.uuid4().hex[:10]}"
        others_before = self.others_cpu()
        spawned = time.monotonic()
        proc = subprocess.Popen(
            [str(PEER_PYTHON), str(ROOT / "benchmarks" / "peers" / "quix_peer.py"), "--bootstrap", self.bootstrap,
             "--topic", topic, "--group", group, "--rd-url", self.mock.url],
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"},
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        reader = LineReader(proc.stdout, "FIRST ", lambda line: float(line.split()[1]))
        errors = LineReader(proc.stderr, "\x00never")
        reader.start()
        errors.start()
        watcher = CommitWatcher(self.bootstrap, group, topic, ends)
        try:
            settled_at = settle_loop(proc, watcher, reader.marked, timeout)
            self.record_resources(run, proc.pid, others_before)
        finally:
            run.exit_code = stop_process(proc)
            watcher.close()
            reader.join(5)
            errors.join(5)
        fill_mock_stats(run, self.mock.stats())
        run.warnings = [line for line in errors.tail if "Error" in line or "Traceback" in line][:20]
        if settled_at is not None and reader.marked_at is not None:
            run.ok = run.accepted is not None and run.accepted >= count
            run.seconds = settled_at - reader.marked_at
            run.join_s = reader.marked_at - spawned
            run.events_per_s = count / run.seconds
        else:
            run.error = "not settled in time; stderr tail: " + " | ".join(errors.tail[-10:])
        log(f"{name}: {_fmt_rate(run.events_per_s)} ev/s, {run.seconds or 0:.2f} s, start {run.join_s or 0:.2f} s, "
            f"RSS {run.peak_rss_mib or 0:.0f} MiB, {run.requests} req"
            + ("" if run.ok else f" NOT OK {run.error or ''} accepted={run.accepted}"))  # fmt: skip
        return run

    def latency(self, messages: Sequence[SampleMessage], rate: float, seconds: float) -> dict[str, Any]:
        """Produce at `rate` events/s for `seconds` to a fresh topic while the connector runs (linger default,
        1 lane, in-process mock); per event: RD acceptance time - produce() call time."""
        from connector.testing.mock_rd import MockRdServer

        count = int(rate * seconds)
        topic = self.broker.unique_topic("bench-latency", 8)
        results, dlq = self.broker.unique_topic("bench-results"), self.broker.unique_topic("bench-dlq")
        group = f"bench-lat-{uuid.uuid4().hex[:10]}"
        accepted_at: dict[str, float] = {}
        with MockRdServer() as rd:
            recorder = rd._app.recorder  # timestamp acceptance exactly (benchmark only)
            original = recorder.record_accepted

            def record_accepted(
                events: list[dict[str, Any]], uuids: list[str], batch_uuid: str | None, account: str | None = None
            ) -> None:
                original(events, uuids, batch_uuid, account)
                now = time.monotonic()
                for event_uuid in uuids:
                    accepted_at[event_uuid] = now

            recorder.record_accepted = record_accepted  # type: ignore[method-assign]
            env = connector_env(self.bootstrap, topic, group, results, dlq, rd.url, 1)
            proc = subprocess.Popen(
                [sys.executable, "-m", "connector.cli", "run"],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            # Partitions are fetched once the ledger scan that follows the assignment is done ("ledger_scan").
            reader = LineReader(proc.stderr, "ledger_scan")
            reader.start()
            produced_at: dict[tuple[int, int], float] = {}
            ends: dict[int, int] = {}
            try:
                deadline = time.monotonic() + 60
                while not reader.marked.wait(0.1) and proc.poll() is None and time.monotonic() < deadline:
                    pass
                if not reader.marked.is_set():
                    raise RuntimeError("latency: the connector was not assigned: " + " | ".join(reader.tail[-10:]))
                time.sleep(0.5)  # first fetch settles
                producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0, "acks": "all"})

                def on_delivery(sent: float, err: Any, msg: Any) -> None:
                    if err is None:
                        produced_at[(msg.partition(), msg.offset())] = sent
                        ends[msg.partition()] = max(ends.get(msg.partition(), 0), msg.offset() + 1)

                began = time.monotonic()
                for i in range(count):
                    target = began + i / rate
                    delay = target - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    message = messages[i % len(messages)]
                    sent = time.monotonic()
                    producer.produce(topic, message.value, message.key,
                                     on_delivery=lambda err, msg, sent=sent: on_delivery(sent, err, msg))  # fmt: skip
                    producer.poll(0)
                producer.flush(30)
                watcher = CommitWatcher(self.bootstrap, group, topic, ends)
                deadline = time.monotonic() + 60
                while not watcher.settled() and time.monotonic() < deadline:
                    time.sleep(0.05)
                watcher.close()
                stats = rd.stats()
            finally:
                code = stop_process(proc)
                reader.join(5)
        records = read_topic(self.bootstrap, results, 1, count, timeout_s=30)
        from connector.avro import Decoder, default_catalog

        decoder = Decoder(default_catalog())
        latencies = []
        for message in records:
            record = decoder.decode(message.value(), results).record  # type: ignore[arg-type]
            key = (record["source_partition"], record["source_offset"])
            if record["event_uuid"] in accepted_at and key in produced_at:
                latencies.append((accepted_at[record["event_uuid"]] - produced_at[key]) * 1000)
        with contextlib.suppress(Exception):
            delete_topics(self.bootstrap, [topic, results, dlq])
        latencies.sort()
        result = {
            "rate_per_s": rate,
            "events": count,
            "measured": len(latencies),
            "linger_ms": LINGER_MS,
            "p50_ms": round(_pct(latencies, 50), 1) if latencies else None,
            "p99_ms": round(_pct(latencies, 99), 1) if latencies else None,
            "max_ms": round(latencies[-1], 1) if latencies else None,
            "requests": stats["requests"],
            "exit_code": code,
            "warnings": reader.warnings,
        }
        log(f"latency: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms over {len(latencies)} events")
        return result


def _pct(values: Sequence[float], p: float) -> float:
    index = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[index]


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def median_run(runs: list[Run]) -> dict[str, Any]:
    good = [r for r in runs if r.ok and r.events_per_s]
    rates = [r.events_per_s for r in good if r.events_per_s is not None]
    mid = sorted(good, key=lambda r: r.events_per_s or 0)[len(good) // 2] if good else None
    return {
        "events": runs[0].events if runs else 0,
        "events_per_s": round(statistics.median(rates), 1) if rates else None,
        "runs_events_per_s": [round(r.events_per_s, 1) if r.events_per_s else None for r in runs],
        "ok_runs": len(good),
        "seconds": round(mid.seconds, 3) if mid and mid.seconds else None,
        "join_s": round(mid.join_s, 2) if mid and mid.join_s else None,
        "requests": mid.requests if mid else None,
        "accepted_by_rd": [r.accepted for r in runs],  # more than `events`: duplicates sent to RD
        "body_mean": round(mid.body_mean, 1) if mid and mid.body_mean is not None else None,
        "body_max": mid.body_max if mid else None,
        "fill_mean": round(mid.body_mean / CAP, 4) if mid and mid.body_mean is not None else None,
        "fill_max": round(mid.body_max / CAP, 4) if mid and mid.body_max is not None else None,
        "peak_rss_mib": round(max(r.peak_rss_mib or 0 for r in runs), 1) if runs else None,
        "cpu_s": mid.cpu_s if mid else None,
        "cpu_threads": mid.cpu_threads if mid else None,
        "runs_cpu_s": [r.cpu_s.get("self") for r in runs],
        # the pipeline process alone (its threads, without the decode worker's): each run's
        "runs_cpu_pipeline_s": [
            round(sum(v for k, v in r.cpu_threads.items() if not k.startswith("worker:")), 2) for r in runs
        ],
        "non_200": [r.non_200 for r in runs if r.non_200],
        "exit_codes": [r.exit_code for r in runs],
        "errors": [r.error for r in runs if r.error],
        "warnings": sorted({w.split("logger=")[-1][:160] for r in runs for w in r.warnings})[:10],
    }


def lane_spread(topic: str, partitions: int, lanes: int) -> list[int]:
    """Source partitions per lane, by the connector's rule (connector/deliver/lanes.py: at assignment, each
    partition to the least loaded lane)."""
    counts = [0] * lanes
    for lane in place({}, [(topic, p) for p in range(partitions)], lanes).values():
        counts[lane] += 1
    return counts


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError):
        mem_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    import confluent_kafka

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gib": round(mem_gib, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
    }


def table(doc: dict[str, Any]) -> str:
    scen = doc["scenarios"]
    header = ("scenario", "events", "events/s", "/ceiling", "/peer", "requests", "mean body/cap", "max body/cap",
              "peak RSS MiB", "p50/p99 ms")  # fmt: skip
    rows = [header]

    def ratio(value: float | None, base: float | None) -> str:
        return f"{value / base:.2f}" if value and base else "-"

    def pct(value: float | None) -> str:
        return f"{value:.1%}" if value is not None else "-"

    groups = (
        ("", (("ceiling", "1 ceiling (no HTTP)"), ("connector", "2 rd-connector, 0 ms"),
              ("connector_variant", "2 rd-connector, 0 ms, --variant"),
              ("connector_4lanes", "2 rd-connector, 0 ms, 4 lanes"),
              ("lanes1_50ms", "3 rd-connector, 50 ms, 1 lane"),
              ("lanes4_50ms", "3 rd-connector, 50 ms, 4 lanes"),
              ("peer_quix", "4 peer: Quix Streams, 0 ms"),
              ("rss_million", "rd-connector 1M drain, 0 ms"))),
        ("mixed_", (("mixed_ceiling", "mixed: ceiling (no HTTP)"), ("mixed_connector", "mixed: rd-connector, 0 ms"),
                    ("mixed_connector_variant", "mixed: rd-connector, 0 ms, --variant"),
                    ("mixed_peer_quix", "mixed: peer Quix Streams, 0 ms"))),
    )  # fmt: skip
    for prefix, keys in groups:
        ceiling = scen.get(prefix + "ceiling", {}).get("events_per_s")
        peer = scen.get(prefix + "peer_quix", {}).get("events_per_s")
        for key, label in keys:
            s = scen.get(key)
            if not s:
                continue
            rate = s.get("events_per_s")
            rows.append((
                label, f"{s.get('events', 0):,}", _fmt_rate(rate),
                ratio(rate, ceiling) if key != prefix + "ceiling" else "1.00",
                ratio(rate, peer),
                str(s.get("requests") if s.get("requests") is not None else "-"),
                pct(s.get("fill_mean")), pct(s.get("fill_max")),
                f"{s['peak_rss_mib']:.0f}" if s.get("peak_rss_mib") else "-", "-",
            ))  # fmt: skip
    lat = scen.get("latency")
    if lat:
        rows.append((f"5 latency @ {lat['rate_per_s']:.0f} ev/s", f"{lat['events']:,}", "-", "-", "-",
                     str(lat["requests"]), "-", "-", "-", f"{lat['p50_ms']}/{lat['p99_ms']}"))  # fmt: skip
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]

    def cells(row: Sequence[str]) -> str:
        return " | ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    lines = [cells(r) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    four = scen.get("lanes4_50ms", {}).get("events_per_s")
    one = scen.get("lanes1_50ms", {}).get("events_per_s")
    con = scen.get("connector", {})
    targets = []
    for prefix, name in (("", "default"), ("mixed_", "mixed")):
        rate = scen.get(prefix + "connector", {}).get("events_per_s")
        ceiling = scen.get(prefix + "ceiling", {}).get("events_per_s")
        peer = scen.get(prefix + "peer_quix", {}).get("events_per_s")
        if rate:
            targets += [f"{name}: end to end / ceiling  {ratio(rate, ceiling)}  (target >= 0.9)",
                        f"{name}: end to end / peer     {ratio(rate, peer)}  (target >= 2.0)"]  # fmt: skip
    targets += [
        f"mean body / cap       {pct(con.get('fill_mean'))} (default), "
        f"{pct(scen.get('mixed_connector', {}).get('fill_mean'))} (mixed)  (target >= 98%)",
        f"max body / cap        {pct(max(s.get('fill_max') or 0 for s in scen.values() if isinstance(s, dict)))}"
        "  (all runs; target <= 100%)",
        f"4 lanes / 1 lane @50ms {ratio(four, one)}  (target >= 2.7 on 3 partitions, 0.9 x the 3x ideal; "
        f"source partitions per lane: {scen.get('lanes4_50ms', {}).get('partitions_per_lane')})",
    ]
    if "rss_million" in scen:
        targets.append(f"peak RSS, 1M drain    {scen['rss_million'].get('peak_rss_mib')} MiB  (target <= 200)")
    if lat:
        targets.append(f"p99 latency @ low rate {lat['p99_ms']} ms  (target <= linger + 100 = {LINGER_MS + 100})")
    return "\n".join(lines) + "\n\n" + "\n".join(targets)


def core_scenarios(
    bench: Bench, args: argparse.Namespace, skip: set[str], scen: dict[str, Any], prefix: str,
    topic: str, ends: dict[int, int], partitions: int,
) -> None:  # fmt: skip
    """The scenarios both workloads run: ceiling, connector (1 lane, mock at 0 ms), peer; `prefix` names them."""
    count = sum(ends.values())
    if "ceiling" not in skip:
        runs = [bench.ceiling(topic, partitions, count) for _ in range(args.repeat)]
        for r in runs:
            log(f"{prefix}ceiling: {r['events_per_s']:,.0f} ev/s")
        rates = [r["events_per_s"] for r in runs]
        scen[prefix + "ceiling"] = {"events": count, "events_per_s": statistics.median(rates),
                                    "runs_events_per_s": rates,
                                    "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
                                    "mean_event_bytes": runs[0]["mean_event_bytes"]}  # fmt: skip
    if "connector" not in skip:
        runs_c: list[Run] = []
        runs_v: list[Run] = []
        for i in range(args.repeat):  # with --variant: A, B, A, B... (a machine that slows slows both)
            runs_c.append(bench.connector(f"{prefix}connector#{i}", topic, ends, lanes=1, latency_ms=0))
            if args.variant:
                runs_v.append(bench.connector(f"{prefix}connector {' '.join(args.variant)}#{i}", topic, ends,
                                              lanes=1, latency_ms=0, variant=args.variant))  # fmt: skip
        scen[prefix + "connector"] = median_run(runs_c)
        if runs_v:
            scen[prefix + "connector_variant"] = {"env": args.variant, **median_run(runs_v)}
    if "peer" not in skip:
        runs_p = [bench.peer(f"{prefix}peer#{i}", topic, ends) for i in range(args.repeat)]
        scen[prefix + "peer_quix"] = median_run(runs_p)


def mixed_workload(bench: Bench, args: argparse.Namespace, skip: set[str], doc: dict[str, Any]) -> None:
    """Issue 20's order-heavy workload (benchmarks/mixed_workload.py) on a topic of its own: core scenarios only."""
    log(f"generating {args.mixed_count:,} mixed events")
    messages = generate_mixed(args.mixed_count)
    described = describe(messages)
    log(f"mixed workload: mean Avro value {described['mean_value_bytes']} B, mean RD JSON event "
        f"{described['mean_rd_json_bytes']} B, orders {described['order_share']:.1%}")  # fmt: skip
    doc["workloads"]["mixed"] = {
        "events": args.mixed_count,
        "partitions": args.mixed_partitions,
        **described,
        "mix": "benchmarks/mixed_workload.py generate_mixed(seed=20): 70 % OrderPlaced/OrderPaid of 2-4 line items, "
        "the rest the other bundled kinds",
    }
    topic, ends = bench.produce("bench-mixed", messages, args.mixed_partitions)
    del messages
    core_scenarios(bench, args, skip, doc["scenarios"], "mixed_", topic, ends, args.mixed_partitions)
    delete_topics(bench.bootstrap, [topic])


def default_workload(bench: Bench, args: argparse.Namespace, skip: set[str], doc: dict[str, Any]) -> None:
    """The suite's own workload (the sample mix) and every scenario of it."""
    scen = doc["scenarios"]
    broker = bench.broker
    log(f"generating {args.count:,} sample events")
    messages = generate_messages(args.count, seed=7)
    doc["workloads"]["default"] = {
        "events": args.count,
        **describe(messages),
        "partitions": args.partitions,
        "mix": "connector.commands.sample.generate_messages(seed=7): 8 e-commerce records, ~3 line items, 0 malformed",
    }
    topic, ends = bench.produce("bench-src", messages, args.partitions)
    core_scenarios(bench, args, skip, scen, "", topic, ends, args.partitions)
    if "connector" not in skip:
        runs_c4 = [
            bench.connector(f"connector 4 lanes#{i}", topic, ends, lanes=4, latency_ms=0) for i in range(args.repeat)
        ]
        scen["connector_4lanes"] = median_run(runs_c4)
        scen["connector_4lanes"]["partitions_per_lane"] = lane_spread(topic, args.partitions, 4)
    if "lanes" not in skip:
        # Its own topic, of `--lanes-partitions` partitions (default 3: fewer partitions than lanes,
        # where a hash made lanes collide) and `--lanes-count` events.
        small = messages[: args.lanes_count]
        small_topic, small_ends = bench.produce("bench-src-lanes", small, args.lanes_partitions)
        for lanes in (1, 4):
            runs_l = [bench.connector(f"{lanes} lane(s) 50ms #{i}", small_topic, small_ends, lanes=lanes,
                                      latency_ms=50) for i in range(args.repeat)]  # fmt: skip
            scen[f"lanes{lanes}_50ms"] = median_run(runs_l)
            scen[f"lanes{lanes}_50ms"]["partitions_per_lane"] = lane_spread(small_topic, args.lanes_partitions, lanes)
        delete_topics(broker.bootstrap_servers, [small_topic])
    if "latency" not in skip:
        try:
            scen["latency"] = bench.latency(messages, args.latency_rate, args.latency_seconds)
        except Exception as exc:  # record it and go on: the other figures are still worth printing
            log(f"latency failed: {exc}")
            scen["latency_error"] = str(exc)[:2000]
    if args.rss_million:
        delete_topics(broker.bootstrap_servers, [topic])
        million = [messages[i % len(messages)] for i in range(1_000_000)]
        big_topic, big_ends = bench.produce("bench-src-1m", million, args.partitions)
        del million
        run = bench.connector("1M drain", big_topic, big_ends, lanes=1, latency_ms=0, timeout=900)
        scen["rss_million"] = median_run([run])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=200_000, help="workload events (default 200,000)")
    parser.add_argument("--lanes-count", type=int, default=None,
                        help="events for the 50 ms latency lane runs (default: the whole workload)")  # fmt: skip
    parser.add_argument("--lanes-partitions", type=int, default=3,
                        help="partitions of the lane runs' topic (default 3: fewer than the 4 lanes)")  # fmt: skip
    parser.add_argument("--partitions", type=int, default=8, help="source partitions (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per throughput scenario (median; default 3)")
    parser.add_argument("--latency-rate", type=float, default=200.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--rss-million", action="store_true", help="also drain 1,000,000 events, report peak RSS")
    parser.add_argument("--skip", default="", help="comma-separated scenarios to skip: "
                        "ceiling,connector,lanes,peer,latency")  # fmt: skip
    parser.add_argument("--connector-env", action="append", default=[], metavar="RDC_X=V",
                        help="extra environment for the connector runs (experiments), repeatable")  # fmt: skip
    parser.add_argument("--variant", action="append", default=[], metavar="RDC_X=V",
                        help="A/B: also run the 1-lane connector with this environment, alternating with the "
                        "runs without it (repeatable: one variant of several settings)")  # fmt: skip
    parser.add_argument("--workloads", default="default,mixed",
                        help="which workloads: default (the sample mix, every scenario), mixed (issue 20's "
                        "order-heavy mix: ceiling, connector, peer), or both (default)")  # fmt: skip
    parser.add_argument("--mixed-count", type=int, default=100_000, help="mixed workload events (default 100,000)")
    parser.add_argument("--mixed-partitions", type=int, default=3, help="mixed workload partitions (default 3)")
    parser.add_argument("--json-out", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    workloads = set(filter(None, args.workloads.split(",")))
    if not workloads <= {"default", "mixed"}:
        parser.error("--workloads: default, mixed or both (comma-separated)")
    wall = time.monotonic()
    doc: dict[str, Any] = {"benchmark": "rd-connector suite", "machine": machine(), "workloads": {}, "scenarios": {}}
    if args.connector_env:
        doc["connector_env"] = args.connector_env
    with EmbeddedBroker() as broker:
        mock = MockProcess()
        try:
            bench = Bench(broker, mock, args)
            if "mixed" in workloads:
                mixed_workload(bench, args, skip, doc)
            if "default" in workloads:
                default_workload(bench, args, skip, doc)
        finally:
            mock.close()
    doc["wall_s"] = round(time.monotonic() - wall, 1)
    doc["definitions"] = {
        "events_per_s": "events / (settled_at - started_at); started_at: connector logs its assignment (peer: first "
        "record in its dataframe; ceiling: first record received); settled_at: committed offsets == produced end "
        "offsets (polled every 50 ms; ceiling: last record encoded). Median of --repeat runs.",
        "fill": "request body bytes / 200,000 (mean and max over the requests of the median run)",
        "peak_rss_mib": "VmHWM of the connector (or peer) process plus those of its children (the decode worker), "
        "max over the runs",
        "latency": "RD acceptance time - produce() call time per event, constant rate, linger 1000 ms, 1 lane",
    }
    print(json.dumps(doc, indent=2))
    with contextlib.suppress(OSError):
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(doc, indent=2))
    print()
    print(table(doc))
    print(f"\nwall time {doc['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
