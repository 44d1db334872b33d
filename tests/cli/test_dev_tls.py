"""`cairn dev` (`make cluster`): by default a local cluster that etcdctl reaches only with the
certificates and flags it prints."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.support.etcdctl import EXIT_SUCCESS, run_etcdctl
from tests.support.tls import CTL_TIMEOUTS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(shutil.which("etcdctl") is None, reason="needs etcdctl"),
]


def _free_base_port() -> int:
    """A client port that was free a moment ago; one member also takes the port above it."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 55000:
            return port
    raise AssertionError("no free port below 55000")


def test_dev_tls_prints_etcdctl_flags_that_work_and_plaintext_is_refused(tmp_path: Path) -> None:
    port = _free_base_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    dev = subprocess.Popen(
        [sys.executable, "-m", "cairn", "dev", "--members", "1", "--client-port", str(port), "--dir", str(tmp_path / "c")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )  # fmt: skip
    try:
        assert dev.stdout is not None
        banner = ""
        while "stop: Ctrl-C" not in banner:
            line = dev.stdout.readline()
            assert line, banner
            banner += line
        match = re.search(r"etcdctl (--cacert=\S+ --cert=\S+ --key=\S+) --endpoints", banner)
        assert match, banner
        flags = [*shlex.split(match.group(1)), *CTL_TIMEOUTS]
        assert f"https://127.0.0.1:{port}" in banner
        deadline = time.monotonic() + 20
        put = run_etcdctl(f"127.0.0.1:{port}", ["put", "k", "v"], extra_global_flags=flags)
        while put.returncode != EXIT_SUCCESS and time.monotonic() < deadline:
            time.sleep(0.2)
            put = run_etcdctl(f"127.0.0.1:{port}", ["put", "k", "v"], extra_global_flags=flags)
        assert put.returncode == EXIT_SUCCESS, put
        plain = run_etcdctl(f"127.0.0.1:{port}", ["get", "k"], extra_global_flags=CTL_TIMEOUTS)
        assert plain.returncode != EXIT_SUCCESS
        assert (tmp_path / "c" / "pki" / "clients" / "admin.key").stat().st_mode & 0o077 == 0
    finally:
        dev.send_signal(signal.SIGTERM)
        dev.wait(timeout=30)
