"""`cairn pki`: what the CAs and certificates contain, and how their files are written.

Everything is checked by reading the written PEM files back with cryptography, the way a TLS
stack would see them: issuer, signature, EKUs, SANs, lifetime, key type, file modes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from cairn import pki
from cairn.cli.main import main

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def ekus(certificate: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def sans(certificate: x509.Certificate) -> tuple[list[str], list[str]]:
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        names.get_values_for_type(x509.DNSName),
        [str(ip) for ip in names.get_values_for_type(x509.IPAddress)],
    )


def lifetime_days(certificate: x509.Certificate) -> float:
    span = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    return span / dt.timedelta(days=1)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "pki"
    pki.init(directory)
    yield directory


def test_init_creates_two_distinct_self_signed_cas(root: Path) -> None:
    layout = pki.Layout(root)
    client_ca, peer_ca = cert(layout.client_ca[0]), cert(layout.peer_ca[0])
    for ca in (client_ca, peer_ca):
        assert ca.issuer == ca.subject
        assert signed_by(ca, ca)
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert constraints.ca and constraints.path_length == 0
    assert client_ca.subject != peer_ca.subject
    assert client_ca.public_key() != peer_ca.public_key()
    assert not signed_by(peer_ca, client_ca)


def test_default_keys_are_ecdsa_p256(root: Path) -> None:
    pki.issue_member(root, "m1", ["m1.example"], ["10.0.0.1"])
    for path in (pki.Layout(root).client_ca[0], pki.Layout(root).member_peer("m1")[0]):
        key = cert(path).public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.name == "secp256r1"


def test_rsa_keys_with_the_requested_size(tmp_path: Path) -> None:
    spec = pki.KeySpec(pki.KeyType.RSA, 3072)
    pki.init(tmp_path, spec)
    pki.issue_client(tmp_path, "admin", spec=spec)
    for path in (pki.Layout(tmp_path).peer_ca[0], pki.Layout(tmp_path).client("admin")[0]):
        key = cert(path).public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072


def test_rsa_below_2048_bits_is_refused(tmp_path: Path) -> None:
    with pytest.raises(pki.PKIError, match="at least 2048"):
        pki.init(tmp_path, pki.KeySpec(pki.KeyType.RSA, 1024))


def test_ca_lifetime_is_configurable(tmp_path: Path) -> None:
    pki.init(tmp_path, days=30)
    assert 30 <= lifetime_days(cert(pki.Layout(tmp_path).client_ca[0])) < 30.01


def test_member_server_certificate_is_signed_by_the_client_ca_for_serving(root: Path) -> None:
    pki.issue_member(root, "m1", ["m1.example", "localhost"], ["10.0.0.1", "::1"])
    layout = pki.Layout(root)
    server = cert(layout.member_server("m1")[0])
    assert signed_by(server, cert(layout.client_ca[0]))
    assert not signed_by(server, cert(layout.peer_ca[0]))
    assert ekus(server) == {SERVER_AUTH}
    assert sans(server) == (["m1.example", "localhost"], ["10.0.0.1", "::1"])
    assert server.subject.rfc4514_string() == "CN=m1"


def test_member_peer_certificate_is_signed_by_the_peer_ca_for_both_ends(root: Path) -> None:
    pki.issue_member(root, "m1", ["m1.example"], ["10.0.0.1"])
    layout = pki.Layout(root)
    peer = cert(layout.member_peer("m1")[0])
    assert signed_by(peer, cert(layout.peer_ca[0]))
    assert not signed_by(peer, cert(layout.client_ca[0]))
    assert ekus(peer) == {SERVER_AUTH, CLIENT_AUTH}
    assert sans(peer) == (["m1.example"], ["10.0.0.1"])


def test_leaf_certificates_are_not_cas(root: Path) -> None:
    pki.issue_member(root, "m1", [], ["10.0.0.1"])
    constraints = cert(pki.Layout(root).member_peer("m1")[0]).extensions.get_extension_for_class(
        x509.BasicConstraints
    )
    assert constraints.critical and not constraints.value.ca


def test_client_certificate_has_the_name_as_cn_and_client_auth_only(root: Path) -> None:
    pki.issue_client(root, "prometheus")
    layout = pki.Layout(root)
    client = cert(layout.client("prometheus")[0])
    assert client.subject.rfc4514_string() == "CN=prometheus"
    assert ekus(client) == {CLIENT_AUTH}
    assert signed_by(client, cert(layout.client_ca[0]))


def test_leaf_lifetime_is_configurable_and_starts_slightly_in_the_past(root: Path) -> None:
    before = dt.datetime.now(dt.UTC)
    pki.issue_client(root, "admin", validity=pki.Validity.days_from_now(10))
    client = cert(pki.Layout(root).client("admin")[0])
    assert client.not_valid_before_utc < before
    assert 10 <= lifetime_days(client) < 10.01


def test_member_without_any_san_is_refused(root: Path) -> None:
    with pytest.raises(pki.PKIError, match="--dns or --ip"):
        pki.issue_member(root, "m1", [], [])


def test_a_bad_ip_san_is_refused(root: Path) -> None:
    with pytest.raises(pki.PKIError, match="not an IP address"):
        pki.issue_member(root, "m1", [], ["10.0.0.300"])


def test_a_name_that_would_leave_the_directory_is_refused(root: Path) -> None:
    with pytest.raises(pki.PKIError, match="not a usable name"):
        pki.issue_client(root, "../evil")


def test_init_refuses_to_overwrite_existing_cas(root: Path) -> None:
    key = pki.Layout(root).client_ca[1]
    before = key.read_bytes()
    with pytest.raises(pki.PKIError, match="refusing to overwrite"):
        pki.init(root)
    assert key.read_bytes() == before


def test_issue_refuses_to_overwrite_an_existing_key(root: Path) -> None:
    pki.issue_client(root, "admin")
    before = pki.Layout(root).client("admin")[1].read_bytes()
    with pytest.raises(pki.PKIError, match="--force"):
        pki.issue_client(root, "admin")
    assert pki.Layout(root).client("admin")[1].read_bytes() == before


def test_force_replaces_an_existing_key(root: Path) -> None:
    pki.issue_member(root, "m1", [], ["10.0.0.1"])
    path = pki.Layout(root).member_peer("m1")[1]
    before = path.read_bytes()
    pki.issue_member(root, "m1", [], ["10.0.0.1"], force=True)
    assert path.read_bytes() != before
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_keys_are_0600_and_certificates_0644_whatever_the_umask(root: Path) -> None:
    old = os.umask(0)
    try:
        pki.issue_member(root, "m1", [], ["10.0.0.1"])
    finally:
        os.umask(old)
    layout = pki.Layout(root)
    for cert_path, key_path in (layout.client_ca, layout.member_server("m1")):
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644


def test_no_temporary_files_are_left_behind(root: Path) -> None:
    pki.issue_client(root, "admin")
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_issue_before_init_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(pki.PKIError, match="cairn pki init"):
        pki.issue_client(tmp_path, "admin")


def test_cli_writes_the_documented_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(tmp_path / "p")
    assert main(["pki", "init", "--dir", d]) == 0
    assert (
        main(
            ["pki", "issue", "member", "m1", "--dns", "m1.example", "--ip", "127.0.0.1", "--dir", d]
        )
        == 0
    )
    assert main(["pki", "issue", "client", "admin", "--dir", d, "--days", "7"]) == 0
    written = sorted(str(p.relative_to(d)) for p in Path(d).rglob("*") if p.is_file())
    assert written == [
        "client-ca.crt", "client-ca.key", "clients/admin.crt", "clients/admin.key",
        "members/m1/peer.crt", "members/m1/peer.key", "members/m1/server.crt",
        "members/m1/server.key", "peer-ca.crt", "peer-ca.key",
    ]  # fmt: skip
    assert sans(cert(Path(d) / "members/m1/server.crt"))[1] == [
        str(ipaddress.ip_address("127.0.0.1"))
    ]


def test_cli_refusal_exits_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(tmp_path / "p")
    assert main(["pki", "init", "--dir", d]) == 0
    assert main(["pki", "init", "--dir", d]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err


def test_a_leaf_never_outlives_its_ca(tmp_path: Path) -> None:
    pki.init(tmp_path, days=30)
    pki.issue_client(tmp_path, "admin", validity=pki.Validity.days_from_now(365))
    layout = pki.Layout(tmp_path)
    client, ca = cert(layout.client("admin")[0]), cert(layout.client_ca[0])
    assert client.not_valid_after_utc == ca.not_valid_after_utc
