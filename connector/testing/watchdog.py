"""Pipe-death watchdog: `python -m connector.testing.watchdog CMD ARGS...`.

Starts CMD and waits until its own stdin reaches end-of-file, which happens when the parent closes the
pipe or dies in any way (SIGKILL included). It then stops CMD with SIGINT (Tansu exits in ~3 ms on
SIGINT; SIGTERM lingers 5 s while clients are connected), escalating to SIGKILL after 3 s. If CMD exits
on its own, the watchdog exits with its status. So no broker outlives the test run or demo that
started it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(3)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m connector.testing.watchdog CMD [ARGS...]", file=sys.stderr)
        return 2
    # The parent signals "stop" by closing our stdin, not by signals: ignore the terminal's SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)

    def wait_for_parent() -> None:
        sys.stdin.buffer.read()  # returns at EOF: the parent closed the pipe or died
        _stop(child)

    threading.Thread(target=wait_for_parent, daemon=True).start()
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
