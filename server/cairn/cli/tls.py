"""TLS for `cairn serve`: which listen URLs get which credentials, with etcd's rules.

Checked against etcd 3.4.23 (see tests/cli/test_tls_matrix_etcdctl.py and the README):

- an ``https://`` listen URL without a cert/key pair is a startup error;
- an ``http://`` URL next to a configured pair is served in plaintext, with a warning, so
  one member can listen on both (etcd does the same);
- a trusted CA file alone already makes client certificates mandatory on https URLs;
- a missing or unreadable file is a startup error naming the file.

cairn's one difference: peer listen URLs must be all http or all https, because the peer
transport dials every member with the same credentials.
"""

from __future__ import annotations

import logging
import ssl
from urllib.parse import urlsplit

import grpc

from cairn.cli.config import ConfigError, ServeConfig
from cairn.pki import (
    PKIError,
    ReloadingChannelCredentials,
    ReloadingServerCredentials,
    ReloadingSSLContext,
    TLSFiles,
    certificate_expiry,
)
from cairn.pki.tls import CLIENT_FLAGS, PEER_FLAGS

log = logging.getLogger("cairn.tls")


def _secure(url: str) -> bool:
    return urlsplit(url).scheme == "https"


def _check(files: TLSFiles, urls: list[str], flags: tuple[str, str, str], kind: str) -> bool:
    """Whether any URL is https (and so TLS is needed); refuses https without a pair."""
    cert_flag, key_flag, ca_flag = flags
    auth_flag = cert_flag.replace("cert-file", "client-cert-auth")
    secure = [url for url in urls if _secure(url)]
    if secure and files.empty:
        raise ConfigError(
            f"TLS key/cert ({cert_flag}, {key_flag}) must be provided for {kind} url "
            f"{secure[0]} with HTTPS scheme"
        )
    for url in urls:
        if _secure(url):
            continue
        if not files.empty:
            log.warning(
                "%s url %s is http while %s is given: served without TLS", kind, url, cert_flag
            )
        if files.client_cert_auth:
            log.warning("%s url %s is http: %s does not apply to it", kind, url, auth_flag)
    if secure and files.client_cert_auth and not files.trusted_ca_file:
        raise ConfigError(f"{auth_flag} needs {ca_flag} to verify the certificates against")
    return bool(secure)


def client_credentials(config: ServeConfig) -> ReloadingServerCredentials | None:
    """Credentials for the https client URLs (reloaded on change), or None if all are http."""
    if not _check(config.client_tls, config.listen_client_urls, CLIENT_FLAGS, "client"):
        return None
    try:
        credentials = ReloadingServerCredentials(config.client_tls, CLIENT_FLAGS)
    except PKIError as error:
        raise ConfigError(str(error)) from None
    _log_settings("client", config.client_tls)
    return credentials


def metrics_ssl_context(config: ServeConfig) -> ssl.SSLContext | None:
    """TLS for https --listen-metrics-urls: the client TLS files and rules, as in etcd, and
    reloaded when the files change like the gRPC ports' credentials (etcd 3.4 too reloads
    its certificates per handshake); None if every metrics URL is http."""
    files = config.client_tls
    if not _check(files, config.listen_metrics_urls, CLIENT_FLAGS, "metrics"):
        return None
    try:
        return ReloadingSSLContext(files, CLIENT_FLAGS).context
    except PKIError as error:
        raise ConfigError(f"metrics TLS: {error}") from None


def add_client_port(
    server: grpc.aio.Server,
    url: str,
    address: str,
    credentials: ReloadingServerCredentials | None,
) -> int:
    """Bind one client URL: TLS for https (credentials exist then), plaintext for http."""
    if _secure(url):
        assert credentials is not None  # client_credentials() refused https without a pair
        if credentials.bound:
            credentials = credentials.for_another_port()
        credentials.bound = True
        return server.add_secure_port(address, credentials.credentials)
    return server.add_insecure_port(address)


def peer_credentials(
    config: ServeConfig,
) -> tuple[grpc.ServerCredentials | None, ReloadingChannelCredentials | None]:
    """Server and channel credentials for https peer URLs; (None, None) for http ones."""
    urls = config.listen_peer_urls
    if not _check(config.peer_tls, urls, PEER_FLAGS, "peer"):
        return None, None
    if not all(_secure(url) for url in urls):
        raise ConfigError(
            "--listen-peer-urls: cairn needs every peer URL https or every one http "
            f"(got {', '.join(urls)})"
        )
    try:
        server = ReloadingServerCredentials(config.peer_tls, PEER_FLAGS)
        channel = ReloadingChannelCredentials(config.peer_tls, PEER_FLAGS)
    except PKIError as error:
        raise ConfigError(str(error)) from None
    _log_settings("peer", config.peer_tls)
    return server.credentials, channel


def _log_settings(port: str, settings: TLSFiles) -> None:
    log.info(
        "%s TLS: cert %s, key %s, trusted CA %s, %s certificates %s",
        port,
        settings.cert_file,
        settings.key_file,
        settings.trusted_ca_file or "(none)",
        port,
        "required" if settings.verifies_clients else "not requested",
    )


def certificate_files(config: ServeConfig) -> list[str]:
    """Every certificate file this member was configured with, client side then peer side."""
    files = config.client_tls.certificate_files() + config.peer_tls.certificate_files()
    return list(dict.fromkeys(files))


def certificate_expiry_timestamps(config: ServeConfig) -> dict[str, float]:
    """notAfter per configured file: the values of
    ``cairn_tls_certificate_expiry_timestamp_seconds{file=...}`` (read fresh, so a rotated
    file reports its new expiry)."""
    return certificate_expiry(certificate_files(config))
