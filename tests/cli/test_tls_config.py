"""The TLS flags arrive the way every other etcd flag does: flags, ETCD_* variables, YAML."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cairn import pki
from cairn.cli import tls
from cairn.cli.config import ConfigError, parse
from cairn.pki import TLSFiles


def test_client_tls_flags() -> None:
    config = parse(
        [
            "--cert-file=s.crt",
            "--key-file",
            "s.key",
            "--trusted-ca-file=ca.crt",
            "--client-cert-auth",
        ],
        environ={},
    )
    assert config.client_tls == TLSFiles("s.crt", "s.key", "ca.crt", client_cert_auth=True)
    assert config.peer_tls == TLSFiles()


def test_boolean_flag_takes_an_explicit_false() -> None:
    assert not parse(["--client-cert-auth=false"], environ={}).client_tls.client_cert_auth


def test_peer_tls_from_environment_variables() -> None:
    config = parse(
        [],
        environ={
            "ETCD_PEER_CERT_FILE": "p.crt",
            "ETCD_PEER_KEY_FILE": "p.key",
            "ETCD_PEER_TRUSTED_CA_FILE": "peer-ca.crt",
            "ETCD_PEER_CLIENT_CERT_AUTH": "true",
        },
    )
    assert config.peer_tls == TLSFiles("p.crt", "p.key", "peer-ca.crt", client_cert_auth=True)


def test_yaml_transport_security_sections_as_etcd_nests_them(tmp_path: Path) -> None:
    path = tmp_path / "etcd.yml"
    path.write_text(
        "client-transport-security:\n"
        "  cert-file: s.crt\n  key-file: s.key\n  trusted-ca-file: ca.crt\n"
        "  client-cert-auth: true\n  auto-tls: false\n"
        "peer-transport-security:\n"
        "  cert-file: p.crt\n  key-file: p.key\n  trusted-ca-file: peer-ca.crt\n"
        "  client-cert-auth: true\n"
    )
    config = parse(["--config-file", str(path)], environ={})
    assert config.client_tls == TLSFiles("s.crt", "s.key", "ca.crt", client_cert_auth=True)
    assert config.peer_tls == TLSFiles("p.crt", "p.key", "peer-ca.crt", client_cert_auth=True)


def test_cert_without_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="--peer-cert-file and --peer-key-file"):
        parse(["--peer-cert-file=p.crt"], environ={})


def test_https_client_url_without_a_pair_is_refused_as_etcd_refuses_it() -> None:
    config = parse(["--listen-client-urls=https://127.0.0.1:2379"], environ={})
    with pytest.raises(ConfigError, match=r"TLS key/cert \(--cert-file, --key-file\) must be"):
        tls.client_credentials(config)


def test_https_peer_url_without_a_pair_is_refused() -> None:
    config = parse(["--listen-peer-urls=https://127.0.0.1:2380"], environ={})
    with pytest.raises(ConfigError, match=r"\(--peer-cert-file, --peer-key-file\) must be"):
        tls.peer_credentials(config)


def test_http_url_next_to_a_pair_is_plaintext_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pki.init(tmp_path)
    pki.issue_member(tmp_path, "m1", [], ["127.0.0.1"])
    cert, key = pki.Layout(tmp_path).member_server("m1")
    config = parse(
        ["--listen-client-urls=http://127.0.0.1:2379", f"--cert-file={cert}", f"--key-file={key}"],
        environ={},
    )
    with caplog.at_level(logging.WARNING):
        assert tls.client_credentials(config) is None
    assert "served without TLS" in caplog.text


def test_mixed_http_and_https_peer_urls_are_refused(tmp_path: Path) -> None:
    pki.init(tmp_path)
    pki.issue_member(tmp_path, "m1", [], ["127.0.0.1"])
    cert, key = pki.Layout(tmp_path).member_peer("m1")
    config = parse(
        [
            "--listen-peer-urls=https://127.0.0.1:2380,http://127.0.0.1:2381",
            f"--peer-cert-file={cert}",
            f"--peer-key-file={key}",
        ],
        environ={},
    )
    with pytest.raises(ConfigError, match="every peer URL https or every one http"):
        tls.peer_credentials(config)


def test_client_cert_auth_without_a_ca_is_refused(tmp_path: Path) -> None:
    pki.init(tmp_path)
    pki.issue_member(tmp_path, "m1", [], ["127.0.0.1"])
    cert, key = pki.Layout(tmp_path).member_server("m1")
    config = parse(
        [
            "--listen-client-urls=https://127.0.0.1:2379",
            f"--cert-file={cert}",
            f"--key-file={key}",
            "--client-cert-auth",
        ],
        environ={},
    )
    with pytest.raises(ConfigError, match="--client-cert-auth needs --trusted-ca-file"):
        tls.client_credentials(config)


def test_expiry_timestamps_cover_every_configured_certificate_file(tmp_path: Path) -> None:
    pki.init(tmp_path)
    pki.issue_member(tmp_path, "m1", [], ["127.0.0.1"])
    layout = pki.Layout(tmp_path)
    (cert, key), (peer_cert, peer_key) = layout.member_server("m1"), layout.member_peer("m1")
    config = parse(
        [
            f"--cert-file={cert}",
            f"--key-file={key}",
            f"--trusted-ca-file={layout.client_ca[0]}",
            f"--peer-cert-file={peer_cert}",
            f"--peer-key-file={peer_key}",
            f"--peer-trusted-ca-file={layout.peer_ca[0]}",
        ],
        environ={},
    )
    expiry = tls.certificate_expiry_timestamps(config)
    assert sorted(expiry) == sorted(
        str(p) for p in (cert, layout.client_ca[0], peer_cert, layout.peer_ca[0])
    )
    assert all(value > 0 for value in expiry.values())
