"""Credentials from files: expiry reporting and the reload decision gRPC asks before handshakes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from cairn import pki
from cairn.pki.tls import (
    ReloadingChannelCredentials,
    ReloadingServerCredentials,
    TLSFiles,
    certificate_expiry,
)


def not_after(path: Path) -> float:
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc.timestamp()


@pytest.fixture
def layout(tmp_path: Path) -> pki.Layout:
    pki.init(tmp_path)
    pki.issue_member(tmp_path, "m1", [], ["127.0.0.1"])
    return pki.Layout(tmp_path)


def server_files(layout: pki.Layout) -> TLSFiles:
    cert, key = layout.member_server("m1")
    return TLSFiles(str(cert), str(key), str(layout.client_ca[0]), client_cert_auth=True)


def test_expiry_is_each_files_not_after(layout: pki.Layout) -> None:
    cert = layout.member_server("m1")[0]
    ca = layout.client_ca[0]
    assert certificate_expiry([str(cert), str(ca)]) == {
        str(cert): not_after(cert),
        str(ca): not_after(ca),
    }


def test_expiry_of_a_bundle_is_its_earliest_certificate(layout: pki.Layout, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.crt"
    leaf, ca = layout.member_server("m1")[0], layout.client_ca[0]
    bundle.write_bytes(ca.read_bytes() + leaf.read_bytes())
    assert certificate_expiry([str(bundle)]) == {str(bundle): not_after(leaf)}


def test_expiry_leaves_out_unreadable_files(layout: pki.Layout, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    assert certificate_expiry([str(tmp_path / "missing.crt"), str(garbage)]) == {}


def test_expiry_follows_a_rotated_file(layout: pki.Layout, tmp_path: Path) -> None:
    cert = str(layout.member_server("m1")[0])
    first = certificate_expiry([cert])[cert]
    validity = pki.Validity.days_from_now(3)
    pki.issue_member(layout.root, "m1", [], ["127.0.0.1"], validity=validity, force=True)
    assert certificate_expiry([cert])[cert] == pytest.approx(validity.not_after.timestamp())
    assert certificate_expiry([cert])[cert] < first


def test_trusted_ca_alone_makes_client_certificates_mandatory() -> None:
    assert TLSFiles("c", "k", "ca").verifies_clients
    assert not TLSFiles("c", "k").verifies_clients


def test_fetcher_keeps_the_current_pair_while_the_files_are_unchanged(layout: pki.Layout) -> None:
    credentials = ReloadingServerCredentials(server_files(layout))
    assert credentials._fetch() is None
    assert credentials.reloads == 0


def test_fetcher_hands_over_a_new_pair_once_after_rotation(layout: pki.Layout) -> None:
    credentials = ReloadingServerCredentials(server_files(layout))
    pki.issue_member(layout.root, "m1", [], ["127.0.0.1"], force=True)
    assert isinstance(credentials._fetch(), grpc.ServerCertificateConfiguration)
    assert credentials._fetch() is None
    assert credentials.reloads == 1


def test_fetcher_waits_while_certificate_and_key_do_not_match(layout: pki.Layout) -> None:
    credentials = ReloadingServerCredentials(server_files(layout))
    key = layout.member_server("m1")[1]
    old_key = key.read_bytes()
    pki.issue_member(layout.root, "m1", [], ["127.0.0.1"], force=True)
    new_key = key.read_bytes()
    key.write_bytes(old_key)  # half-way through a rotation: new certificate, old key
    assert credentials._fetch() is None
    key.write_bytes(new_key)
    os.utime(key, ns=(1, 1))  # a distinct mtime even within the filesystem's time granularity
    assert credentials._fetch() is not None


def test_a_missing_file_is_refused_with_the_flag_and_path(layout: pki.Layout) -> None:
    files = TLSFiles("/nonexistent/server.crt", str(layout.member_server("m1")[1]))
    with pytest.raises(pki.PKIError, match=r"--cert-file /nonexistent/server.crt: No such file"):
        ReloadingServerCredentials(files)


def test_a_key_of_another_certificate_is_refused(layout: pki.Layout) -> None:
    cert = layout.member_server("m1")[0]
    other_key = layout.member_peer("m1")[1]
    with pytest.raises(pki.PKIError, match="does not match"):
        ReloadingServerCredentials(TLSFiles(str(cert), str(other_key)))


def test_channel_credentials_are_rebuilt_only_after_the_files_change(layout: pki.Layout) -> None:
    cert, key = layout.member_peer("m1")
    source = ReloadingChannelCredentials(TLSFiles(str(cert), str(key), str(layout.peer_ca[0])))
    first = source()
    assert source() is first
    pki.issue_member(layout.root, "m1", [], ["127.0.0.1"], force=True)
    assert source() is not first
    assert source.reloads == 1


def test_a_broken_rotation_is_logged_once_not_per_handshake(
    layout: pki.Layout, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = ReloadingServerCredentials(server_files(layout))
    layout.member_server("m1")[0].write_text("half-written")
    with caplog.at_level(logging.WARNING, logger="cairn.tls"):
        for _ in range(5):
            assert credentials._fetch() is None
    assert len([r for r in caplog.records if "cannot be loaded" in r.message]) == 1
