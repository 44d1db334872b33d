"""`cairn check health` agrees with `etcdctl endpoint health`, against cairn and the real etcd.

Deployment waits on it after each (re)start, so it must say healthy exactly when etcdctl does:
a TLS member with the right client certificate is healthy, a closed port and a refused
handshake are not.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.etcdctl import run_etcdctl
from tests.support.servers import ServerKind, ServerProcess, etcd_path, free_port
from tests.support.tls import CTL_TIMEOUTS, ClusterPKI, build_pki

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(
        etcd_path() is None or shutil.which("etcdctl") is None, reason="needs etcd and etcdctl"
    ),
]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    return build_pki(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def servers(
    certs: ClusterPKI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[ServerKind, ServerProcess]]:
    base = tmp_path_factory.mktemp("servers")
    started: dict[ServerKind, ServerProcess] = {}
    for kind in ("cairn", "etcd"):
        started[kind] = ServerProcess(  # type: ignore[index]
            kind,  # type: ignore[arg-type]
            base / kind,
            name="m1",
            scheme="https",
            extra_args=certs.server_flags("m1"),
            ctl_flags=[*certs.ctl_flags(), *CTL_TIMEOUTS],
        ).start()
    yield started
    for server in started.values():
        server.stop()


def cairn_health(endpoint: str, tls_flags: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn", "check", "health", "--endpoints", endpoint,
         "--timeout", "3", *tls_flags],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def etcdctl_health(endpoint: str, tls_flags: list[str]) -> int:
    result = run_etcdctl(
        endpoint, ["endpoint", "health"], extra_global_flags=[*CTL_TIMEOUTS, *tls_flags]
    )
    return result.returncode


@pytest.mark.parametrize("kind", ["cairn", "etcd"])
def test_a_tls_member_with_the_right_client_certificate_is_healthy(
    servers: dict[ServerKind, ServerProcess], certs: ClusterPKI, kind: ServerKind
) -> None:
    endpoint = servers[kind].client_url
    result = cairn_health(endpoint, certs.ctl_flags())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{endpoint} is healthy: successfully committed proposal")
    assert etcdctl_health(endpoint, certs.ctl_flags()) == 0


def test_a_closed_port_is_unhealthy(certs: ClusterPKI) -> None:
    endpoint = f"https://127.0.0.1:{free_port()}"
    result = cairn_health(endpoint, certs.ctl_flags())
    assert result.returncode == 1
    assert f"{endpoint} is unhealthy: failed to commit proposal" in result.stderr
    assert result.stderr.splitlines()[-1] == "Error: unhealthy cluster"
    assert etcdctl_health(endpoint, certs.ctl_flags()) != 0


@pytest.mark.parametrize("kind", ["cairn", "etcd"])
def test_a_client_certificate_from_another_ca_is_unhealthy(
    servers: dict[ServerKind, ServerProcess], certs: ClusterPKI, kind: ServerKind
) -> None:
    endpoint = servers[kind].client_url
    cert, key = certs.rogue.client("admin")
    flags = [f"--cacert={certs.layout.client_ca[0]}", f"--cert={cert}", f"--key={key}"]
    result = cairn_health(endpoint, flags)
    assert result.returncode == 1
    assert "is unhealthy" in result.stderr
    assert etcdctl_health(endpoint, flags) != 0


def test_an_empty_endpoint_list_is_a_usage_error(tmp_path: Path) -> None:
    result = cairn_health(",", [])
    assert result.returncode == 2
