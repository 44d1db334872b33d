"""The PKI directory: where `cairn pki` puts each file, and how it writes them safely.

Layout (documented in the README)::

    <dir>/client-ca.crt  client-ca.key        the client CA
    <dir>/peer-ca.crt    peer-ca.key          the peer CA
    <dir>/members/<name>/server.crt|.key      client port (--cert-file, --key-file)
    <dir>/members/<name>/peer.crt|.key        peer port (--peer-cert-file, --peer-key-file)
    <dir>/clients/<name>.crt|.key             etcdctl --cert/--key (admin, prometheus, ...)

Private keys are created 0600 under a temporary name and linked into place, so no key is ever
readable by others, not even for a moment, and a crash never leaves half a key under the real
name. An existing key is never replaced unless the caller forces it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cairn.pki.certs import (
    CLIENT_USAGES,
    DEFAULT_CA_DAYS,
    DEFAULT_LEAF_DAYS,
    PEER_USAGES,
    SERVER_USAGES,
    Issued,
    KeySpec,
    PKIError,
    Validity,
    create_ca,
    issue,
    load_issued,
    parse_sans,
)

KEY_MODE = 0o600
CERT_MODE = 0o644


@dataclass(frozen=True)
class Layout:
    """Every path of one PKI directory."""

    root: Path

    @property
    def client_ca(self) -> tuple[Path, Path]:
        return self.root / "client-ca.crt", self.root / "client-ca.key"

    @property
    def peer_ca(self) -> tuple[Path, Path]:
        return self.root / "peer-ca.crt", self.root / "peer-ca.key"

    def member_server(self, name: str) -> tuple[Path, Path]:
        return (
            self.root / "members" / name / "server.crt",
            self.root / "members" / name / "server.key",
        )

    def member_peer(self, name: str) -> tuple[Path, Path]:
        return self.root / "members" / name / "peer.crt", self.root / "members" / name / "peer.key"

    def client(self, name: str) -> tuple[Path, Path]:
        return self.root / "clients" / f"{name}.crt", self.root / "clients" / f"{name}.key"


def _check_name(name: str) -> None:
    # The name becomes a path component: refuse anything that could climb out of the dir.
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise PKIError(f"{name!r} is not a usable name (no slashes, not empty)")


def _refuse_existing(paths: Sequence[Path], force: bool) -> None:
    if force:
        return
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise PKIError(
            "refusing to overwrite " + ", ".join(existing) + " (pass --force to replace them)"
        )


def _write(path: Path, data: bytes, mode: int, force: bool) -> None:
    """Write ``data`` to ``path`` created with ``mode`` from the start, atomically.

    The temporary file is opened with O_EXCL and the final mode, so the content never exists
    with looser permissions; linking (not renaming) it into place fails if the name appeared
    meanwhile, so a concurrent run cannot be clobbered without ``force``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)  # the umask may have narrowed it; never widened past mode
        if force:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise PKIError(f"refusing to overwrite {path} (pass --force)") from None
            os.unlink(temporary)
    finally:
        if temporary.exists():
            temporary.unlink()


def save(issued: Issued, cert_path: Path, key_path: Path, force: bool) -> None:
    """Write a key (0600) and its certificate (0644); the key first, so a cert never dangles."""
    _write(key_path, issued.key_pem, KEY_MODE, force)
    _write(cert_path, issued.cert_pem, CERT_MODE, force)


def _load(cert_path: Path, key_path: Path, what: str) -> Issued:
    try:
        return load_issued(cert_path.read_bytes(), key_path.read_bytes())
    except FileNotFoundError:
        raise PKIError(f"no {what} in {cert_path.parent} (run `cairn pki init` first)") from None


def init(
    root: Path,
    spec: KeySpec | None = None,
    days: int = DEFAULT_CA_DAYS,
    force: bool = False,
) -> Layout:
    """Create the client CA and the peer CA under ``root``."""
    layout = Layout(root)
    _refuse_existing([*layout.client_ca, *layout.peer_ca], force)
    validity = Validity.days_from_now(days)
    save(create_ca("cairn client CA", spec or KeySpec(), validity), *layout.client_ca, force)
    save(create_ca("cairn peer CA", spec or KeySpec(), validity), *layout.peer_ca, force)
    return layout


def issue_member(
    root: Path,
    name: str,
    dns: Sequence[str],
    ips: Sequence[str],
    *,
    spec: KeySpec | None = None,
    validity: Validity | None = None,
    force: bool = False,
) -> Layout:
    """A member's server certificate (client CA) and peer certificate (peer CA), same SANs."""
    _check_name(name)
    sans = parse_sans(dns, ips)
    if not sans:
        raise PKIError("a member certificate needs at least one --dns or --ip to be verifiable")
    layout = Layout(root)
    _refuse_existing([*layout.member_server(name), *layout.member_peer(name)], force)
    client_ca = _load(*layout.client_ca, "client CA")
    peer_ca = _load(*layout.peer_ca, "peer CA")
    validity = validity or Validity.days_from_now(DEFAULT_LEAF_DAYS)
    server = issue(client_ca, name, usages=SERVER_USAGES, sans=sans, spec=spec, validity=validity)
    peer = issue(peer_ca, name, usages=PEER_USAGES, sans=sans, spec=spec, validity=validity)
    save(server, *layout.member_server(name), force)
    save(peer, *layout.member_peer(name), force)
    return layout


def issue_client(
    root: Path,
    name: str,
    *,
    spec: KeySpec | None = None,
    validity: Validity | None = None,
    force: bool = False,
) -> Layout:
    """A client certificate with CN=``name`` (the etcd user under --client-cert-auth)."""
    _check_name(name)
    layout = Layout(root)
    _refuse_existing(layout.client(name), force)
    client_ca = _load(*layout.client_ca, "client CA")
    validity = validity or Validity.days_from_now(DEFAULT_LEAF_DAYS)
    save(
        issue(client_ca, name, usages=CLIENT_USAGES, spec=spec, validity=validity),
        *layout.client(name),
        force,
    )
    return layout
