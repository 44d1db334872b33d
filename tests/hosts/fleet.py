"""Test hosts that behave like small VMs: systemd-nspawn containers booting systemd on a bridge.

Each host has its own root filesystem (an overlay on the cached base tree), its own network
namespace with one address on a bridge this module creates, its own systemd, sshd (root login
with a key generated per fleet) and nftables. This machine is the control node at the bridge's
first address. Everything is recorded in ``<run dir>/state.json`` as it is created, so
``teardown`` (or ``python -m tests.hosts down``) removes exactly what was made: containers,
their cgroups, overlay mounts, the bridge (its veths go with the containers).

Facts of this machine the code follows: PID 1 is not systemd and there is no system bus, so
nspawn runs with ``--register=no --keep-unit``; the cgroup hierarchy is a v1/v2 hybrid, and
each launcher is moved into cgroups of its own (unified and name=systemd) before it executes,
otherwise every container would share the caller's cgroup and one host's shutdown would reap
the others.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.hosts.base import base_tree

RUN_ROOT = Path(os.environ.get("CAIRN_NSPAWN_RUNS", "/var/lib/cairn-nspawn"))
CGROUP_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd"))
DEFAULT_SUBNET = "10.231.0.0/24"
FIRST_HOST_OFFSET = 10
"""Hosts get .10, .11, ...; .1 is the control node (this machine) on the bridge."""
BOOT_TIMEOUT_S = 60.0


class FleetError(RuntimeError):
    """A host did not come up; the message carries the tail of its console log."""


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    machine: str
    """The container's machine name (unique per fleet, so parallel fleets never clash)."""
    root: str
    """The merged root filesystem the container boots from."""
    log: str

    @property
    def veth(self) -> str:
        """The host side of the container's veth pair: `ip link set <veth> down` partitions it."""
        return ("vb-" + self.machine)[:15]


@dataclass
class Fleet:
    """A bridge and the hosts on it; state is saved after every step for `teardown`."""

    run_dir: str
    bridge: str
    subnet: str
    control_address: str
    ssh_key: str
    hosts: list[Host] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    extra_addresses: list[str] = field(default_factory=list)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def save(self) -> None:
        Path(self.run_dir, "state.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, run_dir: Path) -> Fleet:
        state = json.loads((run_dir / "state.json").read_text())
        state["hosts"] = [Host(**h) for h in state["hosts"]]
        return cls(**state)

    def ssh(
        self, host: str, command: str, *, timeout: float = 60.0, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on a host as root over SSH (what Ansible does too)."""
        return subprocess.run(
            ["ssh", *ssh_options(self.ssh_key), f"root@{self.host(host).address}", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def add_control_address(self, address: str) -> None:
        """A second address for this machine on the bridge: a client the firewall never listed."""
        _run(["ip", "addr", "add", f"{address}/{self._prefix}", "dev", self.bridge])
        self.extra_addresses.append(address)
        self.save()

    @property
    def _prefix(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen


def ssh_options(key: str) -> list[str]:
    return [
        "-i",
        key,
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
    ]


def _run(command: Sequence[str]) -> None:
    result = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FleetError(f"{' '.join(command)} failed: {result.stderr.strip()}")


def create(
    names: Sequence[str],
    *,
    subnet: str = DEFAULT_SUBNET,
    run_root: Path = RUN_ROOT,
    tag: str | None = None,
) -> Fleet:
    """Boot one host per name on a new bridge and wait until each answers over SSH.

    On any failure everything made so far is torn down before the error propagates.
    """
    tree = base_tree()
    tag = tag or f"{os.getpid() % 100000}"
    run_dir = run_root / f"fleet-{tag}"
    if (run_dir / "state.json").exists():  # left by a run that was killed: clear it first
        teardown(Fleet.load(run_dir))
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    network = ipaddress.ip_network(subnet)
    fleet = Fleet(
        run_dir=str(run_dir),
        bridge=f"cairnbr{tag}"[:15],
        subnet=subnet,
        control_address=str(network.network_address + 1),
        ssh_key=str(run_dir / "id_ed25519"),
    )
    fleet.save()
    try:
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", fleet.ssh_key])
        _make_bridge(fleet)
        addresses = {
            name: str(network.network_address + FIRST_HOST_OFFSET + i)
            for i, name in enumerate(names)
        }
        for name in names:
            host = _make_host(fleet, tree, name, addresses, tag)
            _boot(fleet, host)
        for host in fleet.hosts:
            _wait_for_ssh(fleet, host)
    except BaseException:
        teardown(fleet)
        raise
    return fleet


def _make_bridge(fleet: Fleet) -> None:
    with contextlib.suppress(FleetError):
        _run(["ip", "link", "del", fleet.bridge])
    _run(["ip", "link", "add", fleet.bridge, "type", "bridge"])
    fleet.save()
    prefix = ipaddress.ip_network(fleet.subnet).prefixlen
    _run(["ip", "addr", "add", f"{fleet.control_address}/{prefix}", "dev", fleet.bridge])
    _run(["ip", "link", "set", fleet.bridge, "up"])


def _make_host(fleet: Fleet, tree: Path, name: str, addresses: dict[str, str], tag: str) -> Host:
    host_dir = Path(fleet.run_dir, name)
    upper, work, merged = host_dir / "upper", host_dir / "work", host_dir / "root"
    for directory in (upper, work, merged):
        directory.mkdir(parents=True)
    _run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={tree},upperdir={upper},workdir={work}",
            str(merged),
        ]
    )
    fleet.mounts.append(str(merged))
    fleet.save()
    host = Host(
        name=name,
        address=addresses[name],
        machine=f"c{tag}-{name}"[:11],
        root=str(merged),
        log=str(host_dir / "console.log"),
    )
    _personalise(fleet, host, addresses)
    fleet.hosts.append(host)
    fleet.save()
    return host


def _personalise(fleet: Fleet, host: Host, addresses: dict[str, str]) -> None:
    """Hostname, address, /etc/hosts, SSH host keys and the authorised key of this host."""
    root = Path(host.root)
    prefix = ipaddress.ip_network(fleet.subnet).prefixlen
    (root / "etc" / "hostname").write_text(host.name + "\n")
    hosts_lines = ["127.0.0.1 localhost", f"127.0.1.1 {host.name}"]
    hosts_lines += [f"{address} {name}" for name, address in addresses.items()]
    (root / "etc" / "hosts").write_text("\n".join(hosts_lines) + "\n")
    network_dir = root / "etc" / "systemd" / "network"
    network_dir.mkdir(parents=True, exist_ok=True)
    (network_dir / "10-host0.network").write_text(
        "[Match]\nName=host0\n\n[Network]\n"
        f"Address={host.address}/{prefix}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )
    _run(["ssh-keygen", "-A", "-f", str(root)])
    ssh_dir = root / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(Path(fleet.ssh_key + ".pub").read_text())
    authorized.chmod(0o600)


def _join_own_cgroups(name: str) -> None:
    """Runs in the launcher between fork and exec: its own unified and name=systemd cgroups."""
    for cgroup_root in CGROUP_ROOTS:
        (cgroup_root / name / "cgroup.procs").write_text(str(os.getpid()))


def _boot(fleet: Fleet, host: Host) -> None:
    for cgroup_root in CGROUP_ROOTS:
        (cgroup_root / host.machine).mkdir(exist_ok=True)
        fleet.cgroups.append(str(cgroup_root / host.machine))
    fleet.save()
    log = open(host.log, "ab")  # noqa: SIM115 - the launcher owns it for its whole life
    process = subprocess.Popen(
        [
            "systemd-nspawn",
            "--quiet",
            "--boot",
            f"--directory={host.root}",
            f"--machine={host.machine}",
            f"--hostname={host.name}",
            "--register=no",
            "--keep-unit",
            f"--network-bridge={fleet.bridge}",
            "--console=passive",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        preexec_fn=lambda: _join_own_cgroups(host.machine),
    )
    log.close()
    fleet.pids[host.name] = process.pid
    fleet.save()


def _wait_for_ssh(fleet: Fleet, host: Host) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        if not _alive(fleet.pids[host.name]):
            break
        with contextlib.suppress(OSError), socket.create_connection((host.address, 22), 1):
            result = fleet.ssh(host.name, "systemctl is-system-running --wait", timeout=30)
            last = result.stdout.strip() + result.stderr.strip()
            if result.returncode == 0 or last.startswith("degraded"):
                return
        time.sleep(0.3)
    tail = "\n".join(Path(host.log).read_text(errors="replace").splitlines()[-30:])
    raise FleetError(f"host {host.name} did not boot to sshd ({last}):\n{tail}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A reaped-later zombie child still answers kill(0); ask for its state.
    with contextlib.suppress(ChildProcessError):
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished:
            return False
    return True


def _cgroup_pids(cgroup: Path) -> list[int]:
    pids: list[int] = []
    for procs in cgroup.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in procs.read_text().split()]
    return pids


def _remove_cgroup(cgroup: Path) -> None:
    """Depth first: the container's systemd made sub-cgroups that must go before their parent."""
    if not cgroup.exists():
        return
    for child in sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        cgroup.rmdir()


def stop_host(fleet: Fleet, name: str, timeout: float = 15.0) -> None:
    """Power a host off (SIGTERM asks nspawn to shut the container down), then make sure."""
    pid = fleet.pids.get(name)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    machine = fleet.host(name).machine
    for cgroup_root in CGROUP_ROOTS:
        cgroup = cgroup_root / machine
        for leftover in _cgroup_pids(cgroup):  # processes of this container only
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)
    time.sleep(0.2)
    for cgroup_root in CGROUP_ROOTS:
        _remove_cgroup(cgroup_root / machine)
    del fleet.pids[name]
    fleet.save()


def teardown(fleet: Fleet) -> None:
    """Remove everything the fleet made, in reverse order; safe to call more than once."""
    for name in list(fleet.pids):
        stop_host(fleet, name)
    for cgroup in fleet.cgroups:
        _remove_cgroup(Path(cgroup))
    for mount in reversed(fleet.mounts):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    fleet.mounts.clear()
    subprocess.run(["ip", "link", "del", fleet.bridge], capture_output=True, check=False)
    fleet.save()
    shutil.rmtree(fleet.run_dir, ignore_errors=True)
