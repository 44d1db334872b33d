"""gRPC TLS credentials from certificate files, reloaded from disk when the files change.

Operators rotate certificates by replacing the files (an Ansible run, cert-manager, a cron
job); restarting members for that would cost leader elections. gRPC asks a server's
certificate fetcher before every new TLS handshake, so the fetcher here compares the files'
stat signature with the last one loaded and hands gRPC new key material only when it changed
and parses as a matching pair. Connections already open keep their session; new ones get the
new certificate. A half-finished rotation (new certificate, old key) is not served: the old
pair stays until both files agree.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cairn.pki.certs import PKIError

log = logging.getLogger("cairn.tls")


@dataclass(frozen=True)
class TLSFiles:
    """One port's TLS settings, as etcd's flags name them (client or peer flavour)."""

    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    client_cert_auth: bool = False

    @property
    def empty(self) -> bool:
        """No certificate configured: this port can only serve http:// URLs."""
        return not self.cert_file and not self.key_file

    @property
    def verifies_clients(self) -> bool:
        """Whether a client must present a certificate the trusted CA signed.

        As in etcd 3.4, naming a trusted CA file alone already makes client certificates
        mandatory; --client-cert-auth without a CA file is refused by the config checks.
        """
        return self.client_cert_auth or bool(self.trusted_ca_file)

    def certificate_files(self) -> list[str]:
        """Every configured file holding certificates (for the expiry metric)."""
        return [f for f in (self.cert_file, self.trusted_ca_file) if f]


@dataclass(frozen=True)
class _Material:
    key: bytes
    chain: bytes
    roots: bytes | None


def _signature(paths: Iterable[str]) -> tuple[tuple[int, int, int], ...]:
    signature = []
    for path in paths:
        info = os.stat(path)
        signature.append((info.st_ino, info.st_mtime_ns, info.st_size))
    return tuple(signature)


def _read(path: str, flag: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise PKIError(f"{flag} {path}: {error.strerror}") from None


def _load(files: TLSFiles, flags: tuple[str, str, str]) -> _Material:
    """Read and check the pair: it must parse and the key must belong to the certificate."""
    chain = _read(files.cert_file, flags[0])
    key = _read(files.key_file, flags[1])
    roots = _read(files.trusted_ca_file, flags[2]) if files.trusted_ca_file else None
    try:
        certificate = x509.load_pem_x509_certificate(chain)
        private = serialization.load_pem_private_key(key, password=None)
        if roots is not None:
            x509.load_pem_x509_certificates(roots)
    except ValueError as error:
        raise PKIError(f"{flags[0]}/{flags[1]}: cannot parse: {error}") from None
    public_der = serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(
        serialization.Encoding.DER, public_der
    ) != certificate.public_key().public_bytes(serialization.Encoding.DER, public_der):
        raise PKIError(f"{flags[1]} {files.key_file} does not match {flags[0]} {files.cert_file}")
    return _Material(key, chain, roots)


CLIENT_FLAGS = ("--cert-file", "--key-file", "--trusted-ca-file")
PEER_FLAGS = ("--peer-cert-file", "--peer-key-file", "--peer-trusted-ca-file")


class ReloadingServerCredentials:
    """Server credentials whose key pair (and trusted CA) follow the files on disk."""

    def __init__(self, files: TLSFiles, flags: tuple[str, str, str] = CLIENT_FLAGS) -> None:
        self.files = files
        self._flags = flags
        self._paths = [p for p in (files.cert_file, files.key_file, files.trusted_ca_file) if p]
        initial = _load(files, flags)
        self._loaded = _signature(self._paths)
        self.reloads = 0
        """How many times new material was handed to gRPC (for tests and logs)."""
        self.bound = False
        """Whether a port was bound with these credentials (gRPC serves one port per object)."""
        self._failed = ""
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self._configuration(initial),
            self._fetch,
            require_client_authentication=files.verifies_clients,
        )

    def for_another_port(self) -> ReloadingServerCredentials:
        """Credentials of the same files for one more listening port.

        gRPC gives a dynamic credentials object's initial pair to the first port bound with it
        only (a second port asks the fetcher, which has nothing new, and the bind fails), and
        each port must notice a rotation on its own: so one reloading object per port.
        """
        return ReloadingServerCredentials(self.files, self._flags)

    @staticmethod
    def _configuration(material: _Material) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(material.key, material.chain)], root_certificates=material.roots
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before each handshake: new material if the files changed, else None."""
        try:
            signature = _signature(self._paths)
            if signature == self._loaded:
                return None
            material = _load(self.files, self._flags)
        except (OSError, PKIError) as error:
            # Mid-rotation or a bad file: keep serving the pair that worked. Said once per
            # distinct problem, not once per handshake.
            if str(error) != self._failed:
                self._failed = str(error)
                log.warning("TLS files changed but cannot be loaded (%s); keeping the old", error)
            return None
        except Exception:  # gRPC swallows a failing fetcher; never let it go silent
            log.exception("TLS reload failed; keeping the old certificate")
            return None
        self._loaded = signature
        self.reloads += 1
        log.info(
            "reloaded TLS certificate %s and key %s", self.files.cert_file, self.files.key_file
        )
        return self._configuration(material)


class ReloadingSSLContext:
    """An ssl.SSLContext for a Python TLS server (the https metrics listener) whose key pair
    and trusted CA follow the files on disk, like ReloadingServerCredentials for gRPC.

    `context` is what the server is given; its SNI callback, which OpenSSL calls on every
    ClientHello (with or without a server name, checked with OpenSSL 3.0), hands the
    handshake the context built from the files as they are now. The files are stat'ed per
    handshake and re-read only when they changed; a pair that does not parse or match keeps
    the old context. The client-certificate rule (`verifies_clients`) comes from flags and
    does not change, so every context built here has the same verify mode.
    """

    def __init__(self, files: TLSFiles, flags: tuple[str, str, str] = CLIENT_FLAGS) -> None:
        self.files = files
        self._flags = flags
        self._paths = [p for p in (files.cert_file, files.key_file, files.trusted_ca_file) if p]
        self._loaded = _signature(self._paths)
        self.context = self._build()
        self._current = self.context
        self.reloads = 0
        self._failed = ""
        self.context.sni_callback = self._choose

    def _build(self) -> ssl.SSLContext:
        _load(self.files, self._flags)  # the gRPC side's checks and messages
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.files.cert_file, self.files.key_file)
            if self.files.verifies_clients:
                context.load_verify_locations(self.files.trusted_ca_file)
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as error:  # the files changed between two reads
            raise PKIError(f"{self._flags[0]}/{self._flags[1]}: {error}") from None
        return context

    def current(self) -> ssl.SSLContext:
        """The context for a new handshake: rebuilt if the files changed and load."""
        try:
            signature = _signature(self._paths)
            if signature == self._loaded:
                return self._current
            # Taken before reading: a change while reading is seen, and loaded, next time.
            self._current = self._build()
            self._loaded = signature
        except (OSError, PKIError) as error:
            if str(error) != self._failed:
                self._failed = str(error)
                log.warning("TLS files changed but cannot be loaded (%s); keeping the old", error)
            return self._current
        self.reloads += 1
        log.info(
            "reloaded TLS certificate %s and key %s for the metrics listener",
            self.files.cert_file,
            self.files.key_file,
        )
        return self._current

    def _choose(self, connection: ssl.SSLObject, server_name: str | None, _: object) -> None:
        try:
            connection.context = self.current()
        except Exception:  # a raising callback would fail the handshake; keep serving
            log.exception("TLS reload failed; keeping the old certificate")


def channel_credentials(
    files: TLSFiles, flags: tuple[str, str, str] = PEER_FLAGS
) -> grpc.ChannelCredentials:
    """Credentials a member dials its peers with: the peer CA as roots, its peer pair as client."""
    return _channel(_load(files, flags))


def _channel(material: _Material) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=material.roots,
        private_key=material.key,
        certificate_chain=material.chain,
    )


class ReloadingChannelCredentials:
    """Peer channel credentials that follow the files: call it before each dial.

    gRPC fixes channel credentials when they are made, so a member with a rotated peer
    certificate would keep presenting the old one on every reconnect until it expired. The
    peer transport asks this callable each time it opens a connection instead.
    """

    def __init__(self, files: TLSFiles, flags: tuple[str, str, str] = PEER_FLAGS) -> None:
        self.files = files
        self._flags = flags
        self._paths = [p for p in (files.cert_file, files.key_file, files.trusted_ca_file) if p]
        self._current = _channel(_load(files, flags))
        self._loaded = _signature(self._paths)
        self.reloads = 0

    def __call__(self) -> grpc.ChannelCredentials:
        try:
            signature = _signature(self._paths)
            if signature != self._loaded:
                self._current = _channel(_load(self.files, self._flags))
                self._loaded = signature
                self.reloads += 1
                log.info(
                    "reloaded peer TLS certificate %s for new connections", self.files.cert_file
                )
        except (OSError, PKIError) as error:
            log.warning(
                "peer TLS files changed but cannot be loaded yet (%s); keeping the old", error
            )
        return self._current


def certificate_expiry(paths: Iterable[str]) -> dict[str, float]:
    """Each file's earliest notAfter as a Unix timestamp, for
    ``cairn_tls_certificate_expiry_timestamp_seconds{file=...}``.

    A CA bundle holds several certificates; the earliest to expire is the one that will break
    handshakes first, so that is the one an alert must see. Unreadable files are left out (the
    server already refused to start on them, or they are mid-rotation).
    """
    expiry: dict[str, float] = {}
    for path in paths:
        try:
            with open(path, "rb") as handle:
                certificates = x509.load_pem_x509_certificates(handle.read())
        except (OSError, ValueError) as error:
            log.debug("no expiry for %s: %s", path, error)
            continue
        expiry[path] = min(c.not_valid_after_utc.timestamp() for c in certificates)
    return expiry
