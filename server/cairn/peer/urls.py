"""Turns etcd-style peer URLs (``http://10.0.0.1:2380``) into gRPC dial and listen targets.

Operators write peer URLs the way etcd takes them in ``--listen-peer-urls`` and
``--initial-advertise-peer-urls``; gRPC wants ``host:port``. The scheme still matters: an
``https`` URL must never be dialled or served in plaintext, so it is kept and checked against
the credentials the transport was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


class PeerURLError(ValueError):
    """A peer URL that cannot be used (bad scheme, missing host or port)."""


@dataclass(frozen=True)
class PeerURL:
    """One parsed peer URL."""

    scheme: str
    host: str
    port: int

    @property
    def secure(self) -> bool:
        """Whether this URL asks for TLS."""
        return self.scheme == "https"

    @property
    def target(self) -> str:
        """``host:port`` as gRPC dials and binds it (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def with_port(self, port: int) -> PeerURL:
        """The same URL with another port: used after binding port 0."""
        return PeerURL(self.scheme, self.host, port)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.target}"


def parse_peer_url(url: str) -> PeerURL:
    """Parse ``http(s)://host:port``; port 0 is allowed (bind any free port, for tests)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise PeerURLError(f"peer URL {url!r}: scheme must be http or https")
    try:
        port = parts.port
    except ValueError as exc:
        raise PeerURLError(f"peer URL {url!r}: {exc}") from None
    if not parts.hostname or port is None:
        raise PeerURLError(f"peer URL {url!r}: needs a host and a port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise PeerURLError(f"peer URL {url!r}: must not have a path, query or fragment")
    return PeerURL(parts.scheme, parts.hostname, port)
