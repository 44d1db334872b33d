"""The TLS matrix with the real etcdctl, against `cairn serve` and a real etcd 3.4 side by side.

Both servers run with the same `cairn pki` certificates and the same etcd flags (client and
peer ports on https, client certificates required on both). Every case asserts cairn's outcome
first, then that etcd, given the same invocation, ends the same way: the same exit status and
the same final error line (what a script or an operator sees).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.etcdctl import EXIT_ERROR, EXIT_SUCCESS, CtlResult, run_etcdctl
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


def _start(kind: ServerKind, base: Path, certs: ClusterPKI) -> ServerProcess:
    server = ServerProcess(
        kind,
        base,
        name="m1",
        scheme="https",
        extra_args=certs.server_flags("m1"),
        ctl_flags=[*certs.ctl_flags(), *CTL_TIMEOUTS],
    )
    return server.start()


@pytest.fixture(scope="module")
def servers(
    certs: ClusterPKI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[ServerKind, ServerProcess]]:
    base = tmp_path_factory.mktemp("servers")
    started = {kind: _start(kind, base / kind, certs) for kind in ("cairn", "etcd")}
    yield started  # type: ignore[misc]
    for server in started.values():
        server.stop()


def ctl(server: ServerProcess, flags: list[str], *args: str) -> CtlResult:
    # A bare host:port: etcdctl then speaks TLS only when given TLS flags (an https:// endpoint
    # would make it try TLS even without them).
    endpoint = f"127.0.0.1:{server.client_port}"
    return run_etcdctl(endpoint, list(args), extra_global_flags=[*CTL_TIMEOUTS, *flags])


def last_error(result: CtlResult) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    return lines[-1] if lines else ""


def both(
    servers: dict[ServerKind, ServerProcess], flags: list[str], *args: str
) -> tuple[CtlResult, CtlResult]:
    return ctl(servers["cairn"], flags, *args), ctl(servers["etcd"], flags, *args)


def test_right_ca_and_client_certificate_are_accepted(
    servers: dict[ServerKind, ServerProcess], certs: ClusterPKI
) -> None:
    put_cairn, put_etcd = both(servers, certs.ctl_flags(), "put", "tls-key", "tls-value")
    get_cairn, get_etcd = both(servers, certs.ctl_flags(), "get", "tls-key")
    assert (put_cairn.returncode, put_cairn.stdout) == (EXIT_SUCCESS, "OK\n")
    assert get_cairn.stdout == "tls-key\ntls-value\n"
    assert (put_etcd.returncode, put_etcd.stdout) == (put_cairn.returncode, put_cairn.stdout)
    assert (get_etcd.returncode, get_etcd.stdout) == (get_cairn.returncode, get_cairn.stdout)


def _refused_like_etcd(cairn: CtlResult, etcd: CtlResult) -> None:
    assert cairn.returncode == EXIT_ERROR, cairn
    assert last_error(cairn) == "Error: context deadline exceeded"
    assert (etcd.returncode, last_error(etcd)) == (cairn.returncode, last_error(cairn))


def test_server_certificate_from_another_ca_is_refused(
    servers: dict[ServerKind, ServerProcess], certs: ClusterPKI
) -> None:
    cert, key = certs.layout.client("admin")
    flags = [f"--cacert={certs.rogue.client_ca[0]}", f"--cert={cert}", f"--key={key}"]
    _refused_like_etcd(*both(servers, flags, "get", "tls-key"))


def test_client_certificate_from_another_ca_is_refused(
    servers: dict[ServerKind, ServerProcess], certs: ClusterPKI
) -> None:
    cert, key = certs.rogue.client("admin")
    flags = [f"--cacert={certs.layout.client_ca[0]}", f"--cert={cert}", f"--key={key}"]
    _refused_like_etcd(*both(servers, flags, "get", "tls-key"))


def test_no_client_certificate_is_refused_under_client_cert_auth(
    servers: dict[ServerKind, ServerProcess], certs: ClusterPKI
) -> None:
    flags = [f"--cacert={certs.layout.client_ca[0]}"]
    _refused_like_etcd(*both(servers, flags, "get", "tls-key"))


def test_expired_client_certificate_is_refused(
    servers: dict[ServerKind, ServerProcess], certs: ClusterPKI
) -> None:
    _refused_like_etcd(*both(servers, certs.ctl_flags("expired"), "get", "tls-key"))


def test_certificate_signed_by_the_peer_ca_is_refused_on_the_client_port(
    servers: dict[ServerKind, ServerProcess], certs: ClusterPKI
) -> None:
    # A member's peer certificate carries clientAuth too; only its CA makes it wrong here.
    cert, key = certs.layout.member_peer("m1")
    flags = [f"--cacert={certs.layout.client_ca[0]}", f"--cert={cert}", f"--key={key}"]
    _refused_like_etcd(*both(servers, flags, "get", "tls-key"))


def test_plaintext_connection_to_the_tls_port_is_refused(
    servers: dict[ServerKind, ServerProcess],
) -> None:
    _refused_like_etcd(*both(servers, [], "get", "tls-key"))


def test_plaintext_connection_leaves_a_handshake_line_in_the_log(
    servers: dict[ServerKind, ServerProcess],
) -> None:
    ctl(servers["cairn"], [], "get", "tls-key")
    # gRPC's TLS layer writes it to stderr (WRONG_VERSION_NUMBER: the bytes were not TLS).
    deadline = time.monotonic() + 5
    while "WRONG_VERSION_NUMBER" not in servers["cairn"].log_tail(400):
        assert time.monotonic() < deadline, servers["cairn"].log_tail()
        time.sleep(0.1)
    assert "Handshake failed" in servers["cairn"].log_tail(400)


def _serve_and_fail(kind: ServerKind, tmp_path: Path, flags: list[str]) -> tuple[int, str]:
    client, peer = free_port(), free_port()
    command = [etcd_path()] if kind == "etcd" else [sys.executable, "-m", "cairn", "serve"]
    argv = [
        *command,  # type: ignore[list-item]
        "--name=m1",
        f"--data-dir={tmp_path / kind}",
        f"--listen-client-urls=https://127.0.0.1:{client}",
        f"--advertise-client-urls=https://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=m1=http://127.0.0.1:{peer}",
        *flags,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    return done.returncode, done.stderr


def test_https_client_url_without_certificate_refuses_to_start(tmp_path: Path) -> None:
    code, stderr = _serve_and_fail("cairn", tmp_path, [])
    etcd_code, etcd_stderr = _serve_and_fail("etcd", tmp_path, [])
    wanted = "TLS key/cert (--cert-file, --key-file) must be provided for client url"
    assert code != 0 and wanted in stderr
    assert etcd_code != 0 and wanted in etcd_stderr


def test_missing_certificate_file_refuses_to_start(tmp_path: Path, certs: ClusterPKI) -> None:
    key = certs.layout.member_server("m1")[1]
    flags = [f"--cert-file={tmp_path}/missing.crt", f"--key-file={key}"]
    code, stderr = _serve_and_fail("cairn", tmp_path, flags)
    etcd_code, etcd_stderr = _serve_and_fail("etcd", tmp_path, flags)
    assert code != 0 and f"{tmp_path}/missing.crt: No such file or directory" in stderr
    assert etcd_code != 0 and f"{tmp_path}/missing.crt: no such file" in etcd_stderr
