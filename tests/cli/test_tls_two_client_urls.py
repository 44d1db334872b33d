"""Two https client URLs on one member both serve TLS (etcd allows any number).

gRPC hands a reloading credentials object's first pair to one port only, so each https URL
needs credentials of its own; a deployment listens on the member's address and on 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.servers import ServerProcess, free_port
from tests.support.tls import CTL_TIMEOUTS, build_pki

pytestmark = [pytest.mark.slow, pytest.mark.etcd]


def test_both_https_client_urls_serve_with_client_certificates(tmp_path: Path) -> None:
    certs = build_pki(tmp_path / "tls")
    first, second = free_port(), free_port()
    urls = f"https://127.0.0.1:{first},https://127.0.0.1:{second}"
    server = ServerProcess(
        "cairn",
        tmp_path / "cairn",
        name="m1",
        scheme="https",
        client_port=first,
        extra_args=[*certs.server_flags("m1"), f"--listen-client-urls={urls}"],
        ctl_flags=[*certs.ctl_flags(), *CTL_TIMEOUTS],
    ).start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cairn", "check", "health", f"--endpoints={urls}",
             *certs.ctl_flags()],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("is healthy") == 2
