"""Certificate rotation without a restart: replace the files, the next connection gets them.

A real `cairn serve` process; the certificate it serves is read off a fresh TLS handshake
(Python's ssl module, the client certificate of `admin`), and etcdctl proves the new pair is
the one clients verify. The process must be the same one throughout.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from tests.support.etcdctl import EXIT_ERROR, EXIT_SUCCESS, CtlResult, run_etcdctl
from tests.support.servers import ServerProcess
from tests.support.tls import CTL_TIMEOUTS, ClusterPKI, build_pki

from cairn import pki

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(shutil.which("etcdctl") is None, reason="needs etcdctl"),
]


@pytest.fixture
def certs(tmp_path: Path) -> ClusterPKI:
    return build_pki(tmp_path)


@pytest.fixture
def server(tmp_path: Path, certs: ClusterPKI) -> Iterator[ServerProcess]:
    process = ServerProcess(
        "cairn",
        tmp_path / "cairn",
        name="m1",
        scheme="https",
        extra_args=certs.server_flags("m1"),
        ctl_flags=[*certs.ctl_flags(), *CTL_TIMEOUTS],
    )
    process.start()
    yield process
    process.stop()


def served_certificate(server: ServerProcess, certs: ClusterPKI) -> x509.Certificate:
    """The certificate the server presents to a brand-new connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(certs.layout.client_ca[0])
    context.load_cert_chain(*certs.layout.client("admin"))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", server.client_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def file_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def get(server: ServerProcess, certs: ClusterPKI) -> CtlResult:
    return run_etcdctl(
        f"127.0.0.1:{server.client_port}",
        ["get", "rotation"],
        extra_global_flags=[*CTL_TIMEOUTS, *certs.ctl_flags()],
    )


def wait_for_serial(server: ServerProcess, certs: ClusterPKI, serial: int) -> x509.Certificate:
    deadline = time.monotonic() + 5
    while True:
        seen = served_certificate(server, certs)
        if seen.serial_number == serial or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


def test_new_connections_get_the_replaced_certificate(
    server: ServerProcess, certs: ClusterPKI
) -> None:
    cert_path = certs.layout.member_server("m1")[0]
    before = served_certificate(server, certs)
    assert before.serial_number == file_certificate(cert_path).serial_number
    pid = server.pid

    validity = pki.Validity.days_from_now(5)
    pki.issue_member(
        certs.layout.root, "m1", ["localhost"], ["127.0.0.1"], validity=validity, force=True
    )
    rotated = file_certificate(cert_path)
    after = wait_for_serial(server, certs, rotated.serial_number)

    assert after.serial_number == rotated.serial_number != before.serial_number
    assert after.not_valid_after_utc == rotated.not_valid_after_utc < before.not_valid_after_utc
    assert get(server, certs).returncode == EXIT_SUCCESS
    assert server.pid == pid and server.running
    assert f"reloaded TLS certificate {cert_path}" in server.log_tail(200)


def test_etcdctl_verifies_the_certificate_on_disk_not_the_one_started_with(
    server: ServerProcess, certs: ClusterPKI
) -> None:
    # A pair whose SANs do not name 127.0.0.1: once served, etcdctl must refuse it...
    pki.issue_member(certs.layout.root, "m1", ["elsewhere.example"], [], force=True)
    deadline = time.monotonic() + 10
    refused = get(server, certs)
    while refused.returncode != EXIT_ERROR and time.monotonic() < deadline:
        refused = get(server, certs)
    assert refused.returncode == EXIT_ERROR

    # ...and a correct pair put in place afterwards is accepted, by the same process.
    pki.issue_member(certs.layout.root, "m1", ["localhost"], ["127.0.0.1"], force=True)
    assert get(server, certs).returncode == EXIT_SUCCESS
    assert server.running
