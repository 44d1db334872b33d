"""site.yml against real hosts: 3 members in 3 zones and a monitoring host (nspawn containers).

One fleet and one first run of site.yml are shared by the whole module (booting and deploying
take minutes); each test then checks one promise of the deployment from the outside, the way an
operator would: etcdctl over TLS from the control node with the credentials left in pki/,
connections from other hosts and from an address nobody listed, a second run that changes
nothing.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from tests.ansible_ops.deployment import DEB_CACHE
from tests.deploy.ansible_run import REPO, PlaybookRun, playbook
from tests.hosts import fleet as fleets
from tests.support.etcdctl import CtlResult, run_etcdctl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="nspawn hosts need root"),
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("systemd-nspawn", "debootstrap", "nft", "etcdctl")),
        reason="needs systemd-container, debootstrap, nftables and etcd-client",
    ),
]

MEMBERS = {"m1": "zone-a", "m2": "zone-b", "m3": "zone-c"}
MONITORING = "mon"
UNLISTED = "10.231.0.250"
"""A second address of the control node on the bridge, in no client network."""


@dataclass
class Deployment:
    fleet: fleets.Fleet
    inventory: Path
    first_run: PlaybookRun

    @property
    def pki(self) -> Path:
        return self.inventory.parent / "pki"

    def endpoints(self) -> str:
        return ",".join(f"https://{self.fleet.host(m).address}:2379" for m in MEMBERS)

    def etcdctl(self, *args: str) -> CtlResult:
        return run_etcdctl(
            self.endpoints(),
            list(args),
            extra_global_flags=[
                f"--cacert={self.pki / 'client-ca.crt'}",
                f"--cert={self.pki / 'admin.crt'}",
                f"--key={self.pki / 'admin.key'}",
                "--dial-timeout=3s",
                "--command-timeout=10s",
            ],
        )


def write_inventory(fleet: fleets.Fleet, path: Path) -> None:
    lines = [
        "all:",
        "  vars:",
        "    ansible_user: root",
        f"    ansible_ssh_private_key_file: {fleet.ssh_key}",
        "    ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "    # site.yml ends with monitoring.yml: the test hosts have no package registry, so the",
        "    # control node downloads the Debian packages (cached across runs) and Grafana,",
        "    # which comes from its vendor's repository, stays off.",
        "    cairn_debs_source: control_node",
        f"    cairn_debs_cache: {DEB_CACHE}",
        "    cairn_monitoring_grafana: false",
        "  children:",
        "    cairn:",
        "      hosts:",
    ]
    for member, zone in MEMBERS.items():
        address = fleet.host(member).address
        lines.append(f"        {member}: {{ansible_host: {address}, cairn_zone: {zone}}}")
    lines += [
        "      vars:",
        "        # The containers share this machine's disk with everything else running here:",
        "        # the check runs for real, with room for a busy CI disk.",
        "        cairn_server_disk_check_max_p99_ms: 200",
        "    monitoring:",
        "      hosts:",
        f"        {MONITORING}: {{ansible_host: {fleet.host(MONITORING).address}}}",
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("deploy")
    fleet = fleets.create([*MEMBERS, MONITORING], tag="site")
    try:
        inventory = workdir / "inventory"
        write_inventory(fleet, inventory)
        run = playbook(inventory, "site.yml", log=workdir / "site-1.log")
        assert run.returncode == 0, run.output[-6000:]
        yield Deployment(fleet, inventory, run)
    finally:
        fleets.teardown(fleet)


def can_connect(deployment: Deployment, source_host: str, target: str, port: int) -> bool:
    """A TCP connection from one test host to another (python3 on the source host)."""
    probe = (
        "import socket,sys\n"
        f"s=socket.socket(); s.settimeout(3)\n"
        f"sys.exit(0 if s.connect_ex(('{target}', {port})) == 0 else 1)\n"
    )
    result = deployment.fleet.ssh(source_host, f'python3 -c "{probe}"')
    return result.returncode == 0


def connects_from(source: str, target: str, port: int) -> bool:
    """A TCP connection from this machine, from a chosen source address on the bridge."""
    with socket.socket() as sock:
        sock.settimeout(3)
        sock.bind((source, 0))
        return sock.connect_ex((target, port)) == 0


def test_the_cluster_is_healthy_over_tls_with_the_operators_credentials(
    deployment: Deployment,
) -> None:
    result = deployment.etcdctl("endpoint", "health", "--cluster")
    assert result.returncode == 0, result.stderr
    healthy = [line for line in result.stdout.splitlines() + result.stderr.splitlines()
               if "is healthy" in line]  # fmt: skip
    assert len(healthy) == len(MEMBERS)


def test_the_members_form_one_cluster_of_every_member(deployment: Deployment) -> None:
    result = deployment.etcdctl("member", "list")
    assert result.returncode == 0, result.stderr
    names = sorted(line.split(", ")[2] for line in result.stdout.splitlines())
    assert names == sorted(MEMBERS)


def test_a_put_is_read_back_through_another_member(deployment: Deployment) -> None:
    put = deployment.etcdctl("put", "deployed", "by-ansible")
    assert put.returncode == 0, put.stderr
    last = f"https://{deployment.fleet.host('m3').address}:2379"
    get = run_etcdctl(
        last,
        ["get", "deployed", "--print-value-only"],
        extra_global_flags=[
            f"--cacert={deployment.pki / 'client-ca.crt'}",
            f"--cert={deployment.pki / 'admin.crt'}",
            f"--key={deployment.pki / 'admin.key'}",
        ],
    )
    assert get.returncode == 0, get.stderr
    assert get.stdout.strip() == "by-ansible"


def test_the_operators_credentials_land_beside_the_inventory(deployment: Deployment) -> None:
    for name in ("client-ca.crt", "admin.crt", "admin.key"):
        assert (deployment.pki / name).is_file()
    assert (deployment.pki / "admin.key").stat().st_mode & 0o077 == 0


def test_a_member_holds_its_own_keys_and_no_ca_key(deployment: Deployment) -> None:
    listing = deployment.fleet.ssh("m1", "ls /etc/cairn/pki", check=True).stdout.split()
    assert sorted(listing) == sorted(
        ["client-ca.crt", "peer-ca.crt", "server.crt", "server.key", "peer.crt", "peer.key",
         "client.crt", "client.key"]
    )  # fmt: skip
    found = deployment.fleet.ssh("m1", "find / -xdev -name '*ca.key' -o -name 'admin.key'")
    assert found.stdout.strip() == ""


def test_the_unit_runs_unprivileged_and_hardened(deployment: Deployment) -> None:
    shown = deployment.fleet.ssh(
        "m2",
        "systemctl show cairn -p User -p NoNewPrivileges -p ProtectSystem -p LimitNOFILE "
        "-p IOSchedulingClass -p ActiveState",
        check=True,
    ).stdout
    settings = dict(line.split("=", 1) for line in shown.split())
    assert settings["User"] == "cairn"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["LimitNOFILE"] == "65536"
    assert settings["ActiveState"] == "active"


def test_the_peer_port_admits_members_and_refuses_the_monitoring_host(
    deployment: Deployment,
) -> None:
    m1 = deployment.fleet.host("m1").address
    assert can_connect(deployment, "m2", m1, 2380)
    assert not can_connect(deployment, MONITORING, m1, 2380)


def test_the_client_port_admits_the_control_node_and_refuses_an_unlisted_address(
    deployment: Deployment,
) -> None:
    m1 = deployment.fleet.host("m1").address
    if UNLISTED not in deployment.fleet.extra_addresses:
        deployment.fleet.add_control_address(UNLISTED)
    assert connects_from(deployment.fleet.control_address, m1, 2379)
    assert not connects_from(UNLISTED, m1, 2379)


def test_the_client_port_admits_the_monitoring_host_but_not_another_member(
    deployment: Deployment,
) -> None:
    m1 = deployment.fleet.host("m1").address
    assert can_connect(deployment, MONITORING, m1, 2379)
    assert not can_connect(deployment, "m2", m1, 2379)


def test_the_metrics_port_admits_only_the_monitoring_host(deployment: Deployment) -> None:
    m1 = deployment.fleet.host("m1").address
    assert can_connect(deployment, MONITORING, m1, 2381)
    assert not connects_from(deployment.fleet.control_address, m1, 2381)
    assert not can_connect(deployment, "m2", m1, 2381)


def test_a_second_run_changes_nothing(deployment: Deployment, tmp_path: Path) -> None:
    run = playbook(deployment.inventory, "site.yml", log=tmp_path / "site-2.log")
    assert run.returncode == 0, run.output[-6000:]
    recap = run.recap()
    assert set(recap) >= {*MEMBERS, "localhost"}
    changed = {host: counters["changed"] for host, counters in recap.items()}
    assert changed == dict.fromkeys(recap, 0), run.output[-6000:]
    # and the cluster still serves
    assert deployment.etcdctl("endpoint", "health", "--cluster").returncode == 0


def serial(certificate: str) -> int:
    return x509.load_pem_x509_certificate(certificate.encode()).serial_number


def test_certificates_within_the_renewal_window_are_reissued_without_a_restart(
    deployment: Deployment, tmp_path: Path
) -> None:
    admin_before = serial((deployment.pki / "admin.crt").read_text())
    served_before = serial(deployment.fleet.ssh("m1", "cat /etc/cairn/pki/server.crt").stdout)
    started_before = start_times(deployment)
    # A window longer than the lifetime: every certificate is due.
    run = playbook(
        deployment.inventory, "site.yml", "-e cairn_pki_renew_days=400", log=tmp_path / "renew.log"
    )
    assert run.returncode == 0, run.output[-6000:]
    assert serial((deployment.pki / "admin.crt").read_text()) != admin_before
    assert serial(deployment.fleet.ssh("m1", "cat /etc/cairn/pki/server.crt").stdout) != (
        served_before
    )
    assert start_times(deployment) == started_before  # members reload certificates in place
    health = deployment.etcdctl("endpoint", "health", "--cluster")
    assert health.returncode == 0, health.stderr


def upgraded_source(tmp_path: Path, version: str) -> Path:
    """A copy of this checkout whose package claims a newer version (what a release brings)."""
    source = tmp_path / "source"
    shutil.copytree(REPO / "server", source / "server",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))  # fmt: skip
    shutil.copy(REPO / "README.md", source / "README.md")
    pyproject = (REPO / "pyproject.toml").read_text()
    (source / "pyproject.toml").write_text(
        pyproject.replace('version = "0.1.0"', f'version = "{version}"', 1)
    )
    return source


class Writer(threading.Thread):
    """Puts one key after another through every endpoint until stopped; records each outcome."""

    def __init__(self, deployment: Deployment) -> None:
        super().__init__(daemon=True)
        self.deployment = deployment
        self.stopping = threading.Event()
        self.outcomes: list[tuple[float, bool]] = []

    def run(self) -> None:
        number = 0
        while not self.stopping.is_set():
            number += 1
            result = self.deployment.etcdctl("put", f"upgrade/{number:06d}", "x")
            self.outcomes.append((time.monotonic(), result.returncode == 0))
            time.sleep(0.2)

    def longest_gap(self) -> float:
        """The longest time between two acknowledged writes."""
        times = [at for at, ok in self.outcomes if ok]
        return max((b - a for a, b in itertools.pairwise(times)), default=float("inf"))


def start_times(deployment: Deployment) -> dict[str, int]:
    """Each member's cairn start time on the (shared) kernel's monotonic clock, in µs."""
    times = {}
    for member in MEMBERS:
        shown = deployment.fleet.ssh(
            member, "systemctl show -p ExecMainStartTimestampMonotonic --value cairn", check=True
        )
        times[member] = int(shown.stdout.strip())
    return times


def test_a_rolling_upgrade_restarts_members_one_at_a_time_and_writes_go_on(
    deployment: Deployment, tmp_path: Path
) -> None:
    version = "0.1.1.dev1"
    before = start_times(deployment)
    writer = Writer(deployment)
    writer.start()
    try:
        run = playbook(
            deployment.inventory,
            "rolling-upgrade.yml",
            f"-e cairn_server_source={upgraded_source(tmp_path, version)}",
            log=tmp_path / "upgrade.log",
        )
    finally:
        writer.stopping.set()
        writer.join(timeout=30)
    assert run.returncode == 0, run.output[-6000:]
    for member in MEMBERS:
        current = deployment.fleet.ssh(member, "readlink /opt/cairn/current", check=True)
        assert current.stdout.strip() == f"/opt/cairn/{version}"
    after = start_times(deployment)
    assert all(after[m] > before[m] for m in MEMBERS)  # every member was restarted...
    restarts = sorted(after.values())
    # ...one after the other: each only once the previous one served again.
    assert all(b - a > 1_000_000 for a, b in itertools.pairwise(restarts))
    acknowledged = sum(ok for _, ok in writer.outcomes)
    assert acknowledged > 10
    assert writer.longest_gap() < 10.0, writer.outcomes
    assert (
        deployment.etcdctl("get", "deployed", "--print-value-only").stdout.strip() == "by-ansible"
    )
