"""`cairn dev` as the tests run it: started in a temporary directory, its banner read up to
the line that says how to stop it, and stopped with SIGTERM however the test ends."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

BANNER_END = "stop: Ctrl-C"


def free_base_port() -> int:
    """A client port that was free a moment ago; one member also takes the port above it."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 55000:
            return port
    raise AssertionError("no free port below 55000")


@contextlib.contextmanager
def running_dev(directory: Path, client_port: int, *flags: str) -> Iterator[str]:
    """A one-member `cairn dev` on `client_port`; yields everything it printed at start."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    command = [sys.executable, "-m", "cairn", "dev", "--members", "1"]
    command += ["--client-port", str(client_port), "--dir", str(directory), *flags]
    dev = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    try:
        assert dev.stdout is not None
        banner = ""
        while BANNER_END not in banner:
            line = dev.stdout.readline()
            assert line, f"cairn dev ended before its banner was complete:\n{banner}"
            banner += line
        yield banner
    finally:
        dev.send_signal(signal.SIGTERM)
        dev.wait(timeout=30)
