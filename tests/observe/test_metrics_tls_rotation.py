"""The https metrics listener follows its certificate files, like the gRPC ports: replace
the pair on disk and the next scrape's handshake presents the new certificate, from the same
process. etcd 3.4.23 (which reloads its TLS files on every handshake) is held to the same
test, with certificates from `cairn pki`."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from tests.support.etcdctl import etcdctl_path
from tests.support.servers import ServerKind, ServerProcess, etcd_path, free_port
from tests.support.tls import CTL_TIMEOUTS, ClusterPKI, build_pki

from cairn import pki

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcd_path() is None, reason="needs etcd (Debian etcd-server)"),
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(120),
]

RELOAD_WAIT_S = 5.0


@pytest.fixture
def certs(tmp_path: Path) -> ClusterPKI:
    return build_pki(tmp_path)


def started(kind: ServerKind, tmp_path: Path, certs: ClusterPKI) -> tuple[ServerProcess, str]:
    url = f"https://127.0.0.1:{free_port()}"
    process = ServerProcess(
        kind,
        tmp_path / kind,
        name="m1",
        scheme="https",
        extra_args=[*certs.server_flags("m1"), f"--listen-metrics-urls={url}"],
        ctl_flags=[*certs.ctl_flags(), *CTL_TIMEOUTS],
    )
    return process.start(), url


@pytest.fixture(params=["etcd", "cairn"])
def server(
    request: pytest.FixtureRequest, tmp_path: Path, certs: ClusterPKI
) -> Iterator[tuple[ServerProcess, str]]:
    process, url = started(request.param, tmp_path, certs)
    yield process, url
    process.stop()


@pytest.fixture
def cairn_server(tmp_path: Path, certs: ClusterPKI) -> Iterator[tuple[ServerProcess, str]]:
    process, url = started("cairn", tmp_path, certs)
    yield process, url
    process.stop()


def scraper_context(certs: ClusterPKI) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.layout.client_ca[0]))
    context.load_cert_chain(*(str(p) for p in certs.layout.client("admin")))
    return context


def served_certificate(url: str, certs: ClusterPKI) -> x509.Certificate:
    """The certificate the metrics listener presents to a brand-new connection."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 443)
    with (
        socket.create_connection(address, timeout=5) as raw,
        scraper_context(certs).wrap_socket(raw, server_hostname=address[0]) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def wait_for_serial(url: str, certs: ClusterPKI, serial: int) -> x509.Certificate:
    deadline = time.monotonic() + RELOAD_WAIT_S
    while True:
        seen = served_certificate(url, certs)
        if seen.serial_number == serial or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


def scrape_status(url: str, certs: ClusterPKI) -> int:
    with urllib.request.urlopen(f"{url}/metrics", context=scraper_context(certs), timeout=10) as r:
        return int(r.status)


def test_a_new_scrape_gets_the_replaced_certificate(
    server: tuple[ServerProcess, str], certs: ClusterPKI
) -> None:
    process, url = server
    cert_path = certs.layout.member_server("m1")[0]
    before = served_certificate(url, certs)
    pid = process.pid

    pki.issue_member(
        certs.layout.root,
        "m1",
        ["localhost"],
        ["127.0.0.1"],
        validity=pki.Validity.days_from_now(5),
        force=True,
    )
    rotated = x509.load_pem_x509_certificate(cert_path.read_bytes())
    after = wait_for_serial(url, certs, rotated.serial_number)

    assert after.serial_number == rotated.serial_number != before.serial_number
    assert after.not_valid_after_utc == rotated.not_valid_after_utc < before.not_valid_after_utc
    assert scrape_status(url, certs) == 200
    assert process.pid == pid and process.running


def put_a_certificate_of_another_key(certs: ClusterPKI, tmp_path: Path) -> None:
    """Half a rotation: a new certificate is in place, its key is not (yet)."""
    cert_path, _ = certs.layout.member_server("m1")
    elsewhere = pki.init(tmp_path / "other")
    pki.issue_member(elsewhere.root, "m1", ["localhost"], ["127.0.0.1"])
    cert_path.write_bytes(elsewhere.member_server("m1")[0].read_bytes())


def test_cairn_keeps_serving_the_old_pair_while_the_new_one_does_not_match(
    cairn_server: tuple[ServerProcess, str], certs: ClusterPKI, tmp_path: Path
) -> None:
    process, url = cairn_server
    before = served_certificate(url, certs)
    put_a_certificate_of_another_key(certs, tmp_path)
    time.sleep(0.5)
    assert served_certificate(url, certs).serial_number == before.serial_number
    assert scrape_status(url, certs) == 200
    assert "cannot be loaded" in process.log_tail(100)


def test_etcd_fails_handshakes_while_the_new_pair_does_not_match(
    certs: ClusterPKI, tmp_path: Path
) -> None:
    """Where cairn deliberately differs: etcd loads the files at every handshake and fails
    it when they do not match, so a scrape during a half-done rotation fails."""
    process, url = started("etcd", tmp_path, certs)
    try:
        put_a_certificate_of_another_key(certs, tmp_path)
        with pytest.raises(ssl.SSLError):
            served_certificate(url, certs)
    finally:
        process.stop()
