"""https metrics URLs use the client TLS settings, as etcd's do: with --client-cert-auth a
scraper must present a certificate from the client CA. Checked against etcd 3.4.23 started
with the same flags; cairn also reports each certificate file's expiry."""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Iterator

import pytest
from tests.observe.exposition import parse
from tests.support.etcdctl import etcdctl_path
from tests.support.servers import ServerKind, ServerProcess, etcd_path, free_port
from tests.support.tls import CTL_TIMEOUTS, ClusterPKI, build_pki

from cairn.pki.tls import certificate_expiry

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcd_path() is None, reason="needs etcd (Debian etcd-server)"),
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(120),
]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    return build_pki(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def servers(
    certs: ClusterPKI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[ServerKind, tuple[ServerProcess, str]]]:
    base = tmp_path_factory.mktemp("servers")
    started: dict[ServerKind, tuple[ServerProcess, str]] = {}
    try:
        for kind in ("etcd", "cairn"):
            url = f"https://127.0.0.1:{free_port()}"
            server = ServerProcess(
                kind,
                base / kind,
                name="m1",
                scheme="https",
                extra_args=[*certs.server_flags("m1"), f"--listen-metrics-urls={url}"],
                ctl_flags=[*certs.ctl_flags(), *CTL_TIMEOUTS],
            )
            started[kind] = (server.start(), url)
        yield started
    finally:
        for server, _ in started.values():
            server.stop()


def _context(certs: ClusterPKI, client: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.layout.client_ca[0]))
    if client is not None:
        cert, key = certs.layout.client(client)
        context.load_cert_chain(str(cert), str(key))
    return context


def _get(url: str, context: ssl.SSLContext) -> tuple[int, str]:
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        return response.status, response.read().decode()


@pytest.mark.parametrize("kind", ["etcd", "cairn"])
def test_a_scraper_with_a_client_certificate_is_served(
    servers: dict[ServerKind, tuple[ServerProcess, str]], certs: ClusterPKI, kind: ServerKind
) -> None:
    _, url = servers[kind]
    status, body = _get(f"{url}/metrics", _context(certs, "admin"))
    assert status == 200
    assert "etcd_server_has_leader" in parse(body)


@pytest.mark.parametrize("kind", ["etcd", "cairn"])
def test_a_scraper_without_a_client_certificate_is_refused(
    servers: dict[ServerKind, tuple[ServerProcess, str]], certs: ClusterPKI, kind: ServerKind
) -> None:
    _, url = servers[kind]
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
        _get(f"{url}/health", _context(certs, None))


def test_certificate_expiry_is_exported_per_configured_file(
    servers: dict[ServerKind, tuple[ServerProcess, str]], certs: ClusterPKI
) -> None:
    _, url = servers["cairn"]
    _, body = _get(f"{url}/metrics", _context(certs, "admin"))
    family = parse(body)["cairn_tls_certificate_expiry_timestamp_seconds"]
    exported = {labels["file"]: value for _, labels, value in family.samples}
    cert, _ = certs.layout.member_server("m1")
    peer_cert, _ = certs.layout.member_peer("m1")
    expected = certificate_expiry([str(cert), str(peer_cert)])
    assert expected  # the files are readable certificates
    for path, timestamp in expected.items():
        assert exported[path] == pytest.approx(timestamp)
