"""`make image-test`: the built image, run for real against the embedded broker and the mock RD on the host.

The containers share the host's network namespace (`--network host`), so everything stays on 127.0.0.1.
Steps, each timed:
  1. the image runs as a non-root user;
  2. `check` passes against the broker and the mock;
  3. `produce-sample` (from the image) writes COUNT events, MALFORMED of them malformed;
  4. `run` delivers every good event to the mock RD and dead-letters every malformed one, and the container's
     HEALTHCHECK passes while it runs (and passes with RDC_METRICS_PORT=0, where there is nothing to ask);
  5. SIGTERM (`podman stop`, as an orchestrator does): exit 0, and the group's committed offsets reach the end
     of every partition (settled offsets were committed on the way out).
Exits 0 when all hold; prints a line per step and a summary of the figures.

    usage: python deploy/image/smoke_test.py [--image rd-connector:local] [--count 2000] [--malformed 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from connector.testing.broker import FAST_JOIN_CONSUMER, EmbeddedBroker
from connector.testing.kafka_tools import committed_offsets, read_topic
from connector.testing.mock_rd import MockRdServer

PARTITIONS = 3


def _engine() -> list[str]:
    chosen = os.environ.get("CONTAINER_ENGINE")
    if chosen == "docker" or (chosen is None and shutil.which("docker") and _docker_runs()):
        return ["docker"]
    return ["podman", "--runtime", os.environ.get("PODMAN_RUNTIME", "runc")]


def _docker_runs() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Smoke:
    def __init__(self, image: str) -> None:
        self.engine = _engine()
        self.image = image
        self.timings: list[tuple[str, float]] = []
        self.failures: list[str] = []

    def container(self, env: dict[str, str], *args: str, detach: bool = False, name: str | None = None) -> list[str]:
        cmd = [*self.engine, "run", "--network", "host"]
        if self.engine[0] == "podman":  # podman's default rlimits are too low for librdkafka here
            cmd += ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
        cmd += ["--detach", "--name", name] if detach and name else ["--rm"]
        for key, value in env.items():
            cmd += ["--env", f"{key}={value}"]
        return [*cmd, *args]

    def step(self, title: str, ok: bool, detail: str, began: float) -> None:
        seconds = time.monotonic() - began
        self.timings.append((title, seconds))
        print(f"  [{'ok' if ok else 'FAIL'}] {title} ({seconds:.1f} s): {detail}", flush=True)
        if not ok:
            self.failures.append(title)


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return condition()


def _run(cmd: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image smoke test", description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=os.environ.get("RDC_IMAGE", "rd-connector:local"))
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--malformed", type=int, default=20)
    args = parser.parse_args(argv)
    smoke = Smoke(args.image)
    work = Path(tempfile.mkdtemp(prefix="rdc-image-test-"))
    print(f"image smoke test: {args.image} with {smoke.engine[0]}; logs in {work}")
    with EmbeddedBroker(log_path=work / "broker.log") as broker, MockRdServer() as rd:
        suffix = uuid.uuid4().hex[:8]
        source, results, dlq = f"shop-{suffix}", f"results-{suffix}", f"dlq-{suffix}"
        broker.create_topics([source, results], PARTITIONS)
        broker.create_topics([dlq], 1)
        group, metrics_port = f"image-test-{suffix}", _free_port()
        env = {
            "RDC_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "RDC_TOPICS": source,
            "RDC_RESULTS_TOPIC": results,
            "RDC_DLQ_TOPIC": dlq,
            "RDC_LEDGER_TOPIC": f"{results}.ledger",
            "RDC_GROUP_ID": group,
            "RDC_RD_BASE_URL": rd.url,
            "RDC_RD_ACCESS_TOKEN": "image-test-token",
            "RDC_RD_REQUESTS_PER_MINUTE": "0",
            "RDC_BATCH_LINGER_MS": "200",
            "RDC_METRICS_PORT": str(metrics_port),
            **{f"RDC_KAFKA__{k.upper().replace('.', '_')}": str(v) for k, v in FAST_JOIN_CONSUMER.items()},
        }

        began = time.monotonic()
        user = _run([*smoke.container({}, "--entrypoint", "id", args.image, "-u")])
        smoke.step("runs as a non-root user", user.stdout.strip() not in ("", "0"), f"uid {user.stdout.strip()}", began)

        began = time.monotonic()
        check = _run(smoke.container(env, args.image, "check"))
        (work / "check.log").write_text(check.stdout + check.stderr)
        last = (check.stdout.strip().splitlines() or [""])[-1]
        smoke.step("check passes", check.returncode == 0, f"exit {check.returncode}; {last}", began)

        began = time.monotonic()
        produce = _run(
            smoke.container(
                env,
                args.image,
                "produce-sample",
                "--topic",
                source,
                "--count",
                str(args.count),
                "--malformed",
                str(args.malformed),
            )
        )
        smoke.step("produce-sample", produce.returncode == 0, produce.stdout.strip() or produce.stderr[-300:], began)

        name = f"rdc-image-test-{suffix}"
        good = args.count - args.malformed
        began = time.monotonic()
        started = _run(smoke.container(env, args.image, "run", detach=True, name=name))
        try:
            if started.returncode != 0:
                smoke.step("run starts", False, started.stderr[-300:], began)
                raise SystemExit(1)
            delivered = _wait(lambda: rd.stats()["accepted_events"] >= good, 90)
            letters = read_topic(broker.bootstrap_servers, dlq, 1, args.malformed, timeout_s=30)
            smoke.step(
                "run delivers the sample and dead-letters the malformed",
                delivered and rd.stats()["accepted_events"] == good and len(letters) == args.malformed,
                f"RD accepted {rd.stats()['accepted_events']}/{good} in {rd.stats()['batches']} requests, "
                f"{len(letters)}/{args.malformed} dead letters",
                began,
            )

            began = time.monotonic()
            health = _run([*smoke.engine, "healthcheck", "run", name]) if smoke.engine[0] == "podman" else None
            if health is not None:
                smoke.step("HEALTHCHECK while running", health.returncode == 0, f"exit {health.returncode}", began)

            began = time.monotonic()
            stop = _run([*smoke.engine, "stop", "--time", "40", name], timeout=60)
            code = _run([*smoke.engine, "inspect", name, "--format", "{{.State.ExitCode}}"]).stdout.strip()
            ends = {p: 0 for p in range(PARTITIONS)}
            for message in read_topic(broker.bootstrap_servers, source, PARTITIONS, args.count, timeout_s=30):
                partition, offset = message.partition(), message.offset()
                if partition is not None and offset is not None:
                    ends[partition] = max(ends[partition], offset + 1)
            committed = committed_offsets(broker.bootstrap_servers, group, source, PARTITIONS)
            smoke.step(
                "SIGTERM exits 0 with every settled offset committed",
                stop.returncode == 0 and code == "0" and committed == ends,
                f"exit {code}; committed {committed}, ends {ends}",
                began,
            )
        finally:
            logs = _run([*smoke.engine, "logs", name])
            (work / "run.log").write_text(logs.stdout + logs.stderr)
            _run([*smoke.engine, "rm", "--force", name])

        if smoke.engine[0] == "podman":
            began = time.monotonic()
            quiet = f"{name}-no-metrics"
            _run(smoke.container({**env, "RDC_METRICS_PORT": "0"}, args.image, "run", detach=True, name=quiet))
            try:
                time.sleep(1)
                health = _run([*smoke.engine, "healthcheck", "run", quiet])
                smoke.step(
                    "HEALTHCHECK with RDC_METRICS_PORT=0", health.returncode == 0, f"exit {health.returncode}", began
                )
            finally:
                _run([*smoke.engine, "rm", "--force", quiet])

    total = sum(seconds for _, seconds in smoke.timings)
    print(
        f"image smoke test: {'PASSED' if not smoke.failures else 'FAILED: ' + ', '.join(smoke.failures)} "
        f"in {total:.1f} s"
    )
    return 0 if not smoke.failures else 1


if __name__ == "__main__":
    sys.exit(main())
