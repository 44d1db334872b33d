"""Making keys, certificate authorities and the certificates they sign (pure, no files).

cairn keeps two CAs apart on purpose: the client CA signs what talks to the client port
(member server certificates, operator and tool client certificates), the peer CA signs what
members present to each other. A certificate from one is then worthless on the other port,
so a leaked Prometheus client key cannot be used to pose as a member.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

MIN_RSA_BITS = 2048
DEFAULT_CA_DAYS = 3650
DEFAULT_LEAF_DAYS = 365
BACKDATE = dt.timedelta(minutes=5)
"""Certificates start a little in the past so a member whose clock lags accepts a fresh one."""


class PKIError(Exception):
    """A request the PKI refuses (weak key, no SANs, existing files); the message says why."""


class KeyType(Enum):
    """The key algorithms offered: P-256 (small, fast handshakes) or RSA for older tooling."""

    ECDSA_P256 = "ecdsa-p256"
    RSA = "rsa"


@dataclass(frozen=True)
class KeySpec:
    """Which key to generate: the algorithm and, for RSA, the modulus size."""

    key_type: KeyType = KeyType.ECDSA_P256
    rsa_bits: int = MIN_RSA_BITS

    def generate(self) -> PrivateKey:
        if self.key_type is KeyType.RSA:
            if self.rsa_bits < MIN_RSA_BITS:
                raise PKIError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
            return rsa.generate_private_key(public_exponent=65537, key_size=self.rsa_bits)
        return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both as PEM."""

    certificate: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        # PKCS#8 unencrypted: what Go's tls.LoadX509KeyPair (etcdctl) and gRPC both read.
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True)
class Validity:
    """When a certificate is valid; tests use a window in the past to make an expired one."""

    not_before: dt.datetime
    not_after: dt.datetime

    @classmethod
    def days_from_now(cls, days: int, now: dt.datetime | None = None) -> Validity:
        if days <= 0:
            raise PKIError("a certificate lifetime must be at least one day")
        start = (now or dt.datetime.now(dt.UTC)) - BACKDATE
        return cls(start, start + BACKDATE + dt.timedelta(days=days))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(key: PrivateKey, *, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        # RSA key exchange encrypts to the key; ECDSA keys only sign.
        key_encipherment=not ca and isinstance(key, rsa.RSAPrivateKey),
        content_commitment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def create_ca(common_name: str, spec: KeySpec, validity: Validity) -> Issued:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = spec.generate()
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity.not_before)
        .not_valid_after(validity.not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return Issued(builder.sign(key, hashes.SHA256()), key)


def parse_sans(dns: Sequence[str], ips: Sequence[str]) -> list[x509.GeneralName]:
    """DNS and IP subject alternative names; a bad IP is refused rather than dropped."""
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    for raw in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(raw)))
        except ValueError:
            raise PKIError(f"--ip {raw!r} is not an IP address") from None
    return names


def issue(
    ca: Issued,
    common_name: str,
    *,
    usages: Sequence[x509.ObjectIdentifier],
    sans: Sequence[x509.GeneralName] = (),
    spec: KeySpec | None = None,
    validity: Validity,
) -> Issued:
    """A leaf certificate for ``common_name`` signed by ``ca``, with the given EKUs and SANs."""
    key = (spec or KeySpec()).generate()
    public = key.public_key()
    # A certificate outliving its CA would only fail later and more confusingly: cut it there.
    not_after = min(validity.not_after, ca.certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity.not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


SERVER_USAGES = (ExtendedKeyUsageOID.SERVER_AUTH,)
"""A member's client-port certificate: it only ever answers TLS handshakes."""
PEER_USAGES = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
"""A member's peer certificate: it serves its peer port and dials the other members' ones."""
CLIENT_USAGES = (ExtendedKeyUsageOID.CLIENT_AUTH,)
"""An operator's or tool's certificate: it can only authenticate as a client."""


def load_issued(cert_pem: bytes, key_pem: bytes) -> Issued:
    """Read back a CA (or any pair) written by :func:`Issued.cert_pem` / ``key_pem``."""
    certificate = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PKIError("only ECDSA and RSA keys are supported")
    return Issued(certificate, key)
