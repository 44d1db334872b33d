"""Certificate authorities and certificates for cairn (`cairn pki`), and TLS credentials.

This layer knows files and X.509, nothing about members or the API; the CLI and the server
call into it.
"""

from cairn.pki.certs import KeySpec, KeyType, PKIError, Validity
from cairn.pki.store import Layout, init, issue_client, issue_member
from cairn.pki.tls import (
    ReloadingChannelCredentials,
    ReloadingServerCredentials,
    ReloadingSSLContext,
    TLSFiles,
    certificate_expiry,
    channel_credentials,
)

__all__ = [
    "KeySpec",
    "KeyType",
    "Layout",
    "PKIError",
    "ReloadingChannelCredentials",
    "ReloadingSSLContext",
    "ReloadingServerCredentials",
    "TLSFiles",
    "Validity",
    "certificate_expiry",
    "channel_credentials",
    "init",
    "issue_client",
    "issue_member",
]
