"""The Debian root tree every test host boots from: built once, cached, shared read-only.

debootstrap takes a minute or more, so the tree is built once per package list and kept under
/var/cache/cairn-nspawn/<key>/, where the key is a hash of everything that shapes the tree
(suite, variant, packages, the preparation steps' version). A changed package list builds a new
tree beside the old one instead of silently reusing a stale one. Hosts never write to it: each
boots from an overlay (or a copy) of it (tests/hosts/fleet.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-venv",
    "python3-apt",
    "nftables",
    "iproute2",
    "ca-certificates",
    "sudo",
)
"""What a cloud VM image would have that the playbooks rely on (sudo: playbooks use become)."""

PREPARE_VERSION = "1"
"""Bump when `_prepare` changes, so cached trees made by the old steps are not reused."""

CACHE_ROOT = Path(os.environ.get("CAIRN_NSPAWN_CACHE", "/var/cache/cairn-nspawn"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class BaseImageError(RuntimeError):
    """The tree could not be built; the message carries debootstrap's last lines."""


def cache_key(packages: Sequence[str] = PACKAGES) -> str:
    """Names the tree after what went into it."""
    recipe = "\n".join([SUITE, VARIANT, PREPARE_VERSION, *sorted(packages)])
    return f"{SUITE}-{VARIANT}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Two test runs never build the same tree at once; the second waits and reuses it."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_tree(packages: Sequence[str] = PACKAGES, mirror: str | None = None) -> Path:
    """The cached tree for this package list, built first if it is not there yet."""
    key = cache_key(packages)
    tree = CACHE_ROOT / key
    with _exclusive(CACHE_ROOT / f"{key}.lock"):
        if (tree / ".cairn-complete").exists():
            return tree
        building = CACHE_ROOT / f"{key}.building"
        shutil.rmtree(building, ignore_errors=True)
        _debootstrap(building, packages, mirror or os.environ.get("CAIRN_NSPAWN_MIRROR"))
        _prepare(building)
        (building / ".cairn-complete").write_text(key + "\n")
        shutil.rmtree(tree, ignore_errors=True)
        building.rename(tree)
    return tree


def _debootstrap(target: Path, packages: Sequence[str], mirror: str | None) -> None:
    command = [
        "debootstrap",
        f"--variant={VARIANT}",
        f"--include={','.join(packages)}",
        SUITE,
        str(target),
        mirror or DEFAULT_MIRROR,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise BaseImageError(f"debootstrap failed ({result.returncode}):\n{tail}")


def _prepare(tree: Path) -> None:
    """What every host shares: networkd and sshd on at boot, nothing host-specific inside.

    Host keys and the machine id are removed so that no two hosts share them; each host gets
    its own when it is created.
    """
    subprocess.run(
        ["systemctl", f"--root={tree}", "enable", "systemd-networkd.service", "ssh.service"],
        check=True,
        capture_output=True,
    )
    # Nothing reads a console: a getty there only spins.
    subprocess.run(
        ["systemctl", f"--root={tree}", "mask", "console-getty.service", "getty@.service"],
        check=True,
        capture_output=True,
    )
    for key in (tree / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (tree / "etc" / "machine-id").write_text("")
    for leftover in (tree / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        leftover.unlink()
    shutil.rmtree(tree / "var" / "lib" / "apt" / "lists", ignore_errors=True)
    (tree / "var" / "lib" / "apt" / "lists" / "partial").mkdir(parents=True)
