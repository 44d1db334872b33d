"""The day-2 playbooks against real hosts: replace a failed member, upgrade, rotate certificates.

One fleet (nspawn containers m1-m4 on a bridge of its own) and one site.yml run of m1-m3 are
shared by the whole module; m4 is the fresh host that replaces a failed member. Each stage
(replacement, upgrade, rotation) runs once in a module fixture that records what an operator
would look at, and each test checks one promise from the outside: etcdctl over TLS from the
control node with the operator's credentials, SSH to the hosts, openssl s_client on the wire.
The stages build on each other in this order (the cluster after the replacement is m1, m2, m4).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.ansible_ops.deployment import DEB_CACHE
from tests.deploy.ansible_run import REPO, PlaybookRun, playbook
from tests.hosts import fleet as fleets
from tests.support.etcdctl import CtlResult, run_etcdctl

pytestmark = [
    pytest.mark.slow,
    # The module's fixtures boot hosts and run playbooks for minutes at a time.
    pytest.mark.timeout(2400),
    pytest.mark.skipif(os.geteuid() != 0, reason="nspawn hosts need root"),
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("systemd-nspawn", "debootstrap", "nft", "etcdctl")),
        reason="needs systemd-container, debootstrap, nftables and etcd-client",
    ),
]

SUBNET = os.environ.get("CAIRN_DAY2_SUBNET", "10.233.0.0/24")
ZONES = {"m1": "zone-a", "m2": "zone-b", "m3": "zone-c"}
FRESH = "m4"
"""The spare host: replaces m3 in zone-c."""
FAILED = "m3"


@dataclass
class Cluster:
    """The shared fleet and the inventory as it stands (it changes when a member is replaced)."""

    fleet: fleets.Fleet
    inventory: Path
    members: dict[str, str]
    logs: Path

    @property
    def pki(self) -> Path:
        return self.inventory.parent / "pki"

    def url(self, member: str) -> str:
        return f"https://{self.fleet.host(member).address}:2379"

    def etcdctl(self, *args: str, members: list[str] | None = None) -> CtlResult:
        endpoints = ",".join(self.url(m) for m in members or self.members)
        return run_etcdctl(
            endpoints,
            list(args),
            extra_global_flags=[
                f"--cacert={self.pki / 'client-ca.crt'}",
                f"--cert={self.pki / 'admin.crt'}",
                f"--key={self.pki / 'admin.key'}",
                "--dial-timeout=3s",
                "--command-timeout=10s",
            ],
        )

    def write_inventory(self) -> None:
        lines = [
            "all:",
            "  vars:",
            "    ansible_user: root",
            f"    ansible_ssh_private_key_file: {self.fleet.ssh_key}",
            # This loaded test machine is no production disk: the disk check only warns.
            "    cairn_server_disk_check_fail: false",
            # site.yml ends with monitoring.yml: no package registry on the test hosts, so the
            # control node brings the Debian packages; Grafana (vendor repository) stays off.
            "    cairn_debs_source: control_node",
            f"    cairn_debs_cache: {DEB_CACHE}",
            "    cairn_monitoring_grafana: false",
            "    ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "  children:",
            "    cairn:",
            "      hosts:",
        ]
        for member, zone in self.members.items():
            address = self.fleet.host(member).address
            lines.append(f"        {member}: {{ansible_host: {address}, cairn_zone: {zone}}}")
        self.inventory.write_text("\n".join(lines) + "\n")

    def run(self, name: str, *extra: str, log: str) -> PlaybookRun:
        return playbook(self.inventory, name, *extra, log=self.logs / log)

    def healthy_members(self) -> int:
        result = self.etcdctl("endpoint", "health", "--cluster")
        return sum("is healthy" in line for line in (result.stdout + result.stderr).splitlines())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("day2")
    fleet = fleets.create([*ZONES, FRESH], subnet=SUBNET, tag="day2")
    try:
        deployed = Cluster(fleet, workdir / "inventory", dict(ZONES), workdir)
        deployed.write_inventory()
        run = deployed.run("site.yml", log="site.log")
        assert run.returncode == 0, run.output[-6000:]
        yield deployed
    finally:
        fleets.teardown(fleet)


class Writer(threading.Thread):
    """Puts numbered keys through etcdctl over TLS, one after the other, until stopped.

    A put that fails is tried once more (a request in flight when its member restarts or a
    leader moves may fail, and etcdctl picks another endpoint); a put that fails twice is a
    write the cluster refused.
    """

    def __init__(self, cluster: Cluster, prefix: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.prefix = cluster, prefix
        self.written: list[str] = []
        self.retried: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        number = 0
        while not self._stopping.is_set():
            key = f"{self.prefix}/{number:06d}"
            first = self.cluster.etcdctl("put", key, str(number))
            if first.returncode != 0:
                self.retried.append(key)
                time.sleep(0.5)
                second = self.cluster.etcdctl("put", key, str(number))
                if second.returncode != 0:
                    self.failed.append((key, second.stderr.strip()))
                    number += 1
                    continue
            self.written.append(key)
            number += 1
            time.sleep(0.2)

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=60)


def keys_under(cluster: Cluster, prefix: str) -> set[str]:
    result = cluster.etcdctl("get", prefix + "/", "--prefix", "--keys-only")
    assert result.returncode == 0, result.stderr
    return {line for line in result.stdout.splitlines() if line}


def member_names(cluster: Cluster) -> list[str]:
    result = cluster.etcdctl("member", "list", "--write-out=json")
    assert result.returncode == 0, result.stderr
    return sorted(m.get("name", "") for m in json.loads(result.stdout)["members"])


def wait_until_healthy(cluster: Cluster, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while cluster.healthy_members() != len(cluster.members):
        assert time.monotonic() < deadline, "the cluster did not become healthy again"
        time.sleep(2)


# --- replacing a failed member: remove-member.yml, then add-member.yml ---------------------


@dataclass
class Replacement:
    refused_removal: PlaybookRun
    members_after_refusal: list[str]
    removal: PlaybookRun
    members_after_removal: list[str]
    second_removal: PlaybookRun
    addition: PlaybookRun
    keys_before: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def replacement(cluster: Cluster) -> Replacement:
    """m3 fails for good; it is removed and m4 (zone-c) added in its place."""
    for number in range(20):
        assert cluster.etcdctl("put", f"before/{number:02d}", "v").returncode == 0
    cluster.fleet.ssh(FAILED, "systemctl disable --now cairn", check=True)
    # With m3 down, removing the healthy m1 would leave m2 alone of {m2, m3}: no quorum.
    refused = cluster.run("remove-member.yml", "-e", "member=m1", log="remove-m1.log")
    after_refusal = member_names(cluster)
    removal = cluster.run("remove-member.yml", "-e", f"member={FAILED}", log="remove.log")
    after_removal = member_names(cluster)
    second = cluster.run("remove-member.yml", "-e", f"member={FAILED}", log="remove-2.log")
    # The operator replaces the failed host by the fresh one in the inventory, same zone.
    del cluster.members[FAILED]
    cluster.members[FRESH] = ZONES[FAILED]
    cluster.write_inventory()
    addition = cluster.run("add-member.yml", "-e", f"member={FRESH}", log="add.log")
    return Replacement(refused, after_refusal, removal, after_removal, second, addition,
                       keys_under(cluster, "before"))  # fmt: skip


def test_remove_member_refuses_a_removal_that_loses_the_quorum(
    replacement: Replacement,
) -> None:
    assert replacement.refused_removal.returncode != 0
    assert "needs 2 to keep a quorum" in replacement.refused_removal.output
    assert replacement.members_after_refusal == ["m1", "m2", "m3"]


def test_remove_member_takes_the_failed_member_out_of_the_cluster(
    replacement: Replacement,
) -> None:
    assert replacement.removal.returncode == 0, replacement.removal.output[-4000:]
    assert replacement.members_after_removal == ["m1", "m2"]


def test_remove_member_stops_and_wipes_the_removed_host(
    cluster: Cluster, replacement: Replacement
) -> None:
    state = cluster.fleet.ssh(FAILED, "systemctl is-enabled cairn; systemctl is-active cairn")
    assert state.stdout.split() == ["disabled", "inactive"]
    assert cluster.fleet.ssh(FAILED, "test -e /var/lib/cairn/data").returncode == 1


def test_remove_member_a_second_time_changes_nothing(replacement: Replacement) -> None:
    assert replacement.second_removal.returncode == 0, replacement.second_removal.output[-4000:]
    assert {c["changed"] for c in replacement.second_removal.recap().values()} == {0}


def test_add_member_joins_the_fresh_host(cluster: Cluster, replacement: Replacement) -> None:
    assert replacement.addition.returncode == 0, replacement.addition.output[-6000:]
    assert member_names(cluster) == ["m1", "m2", FRESH]


def test_the_new_member_serves_the_keys_written_before_it_joined(
    cluster: Cluster, replacement: Replacement
) -> None:
    assert len(replacement.keys_before) == 20
    local = cluster.etcdctl(
        "get", "before/", "--prefix", "--keys-only", "--consistency=s", members=[FRESH]
    )
    assert local.returncode == 0, local.stderr
    assert {line for line in local.stdout.splitlines() if line} == replacement.keys_before


def test_after_the_replacement_every_member_is_healthy_with_equal_hashes(
    cluster: Cluster, replacement: Replacement
) -> None:
    assert cluster.healthy_members() == 3
    hashes = cluster.etcdctl("endpoint", "hashkv", "--cluster", "--write-out=json")
    assert hashes.returncode == 0, hashes.stderr
    values = {entry["HashKV"]["hash"] for entry in json.loads(hashes.stdout)}
    assert len(json.loads(hashes.stdout)) == 3
    assert len(values) == 1


def test_add_member_a_second_time_changes_nothing(
    cluster: Cluster, replacement: Replacement
) -> None:
    again = cluster.run("add-member.yml", "-e", f"member={FRESH}", log="add-2.log")
    assert again.returncode == 0, again.output[-4000:]
    assert {c["changed"] for c in again.recap().values()} == {0}, again.output[-4000:]


# --- rolling-upgrade.yml -------------------------------------------------------------------


@dataclass
class Upgrade:
    version: str
    run: PlaybookRun
    second_run: PlaybookRun
    writer: Writer
    pids_before: dict[str, str]
    leader_before: str


def leader_name(cluster: Cluster) -> str:
    status = cluster.etcdctl("endpoint", "status", "--cluster", "--write-out=json")
    assert status.returncode == 0, status.stderr
    leaders = {entry["Status"]["leader"] for entry in json.loads(status.stdout)}
    assert len(leaders) == 1
    members = cluster.etcdctl("member", "list", "--write-out=json")
    by_id = {m["ID"]: m["name"] for m in json.loads(members.stdout)["members"]}
    return by_id[leaders.pop()]


def main_pid(cluster: Cluster, member: str) -> str:
    shown = cluster.fleet.ssh(member, "systemctl show cairn -p MainPID --value", check=True)
    return shown.stdout.strip()


def source_with_version(destination: Path, version: str) -> Path:
    """A copy of the cairn source whose only difference is its version: the "new build"."""
    for part in ("server", "pyproject.toml", "README.md"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, destination / part,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))  # fmt: skip
        else:
            shutil.copy2(source, destination / part)
    pyproject = destination / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(re.sub(r'(?m)^version = "[^"]+"', f'version = "{version}"', text, count=1))
    return destination


@pytest.fixture(scope="module")
def upgrade(
    cluster: Cluster, replacement: Replacement, tmp_path_factory: pytest.TempPathFactory
) -> Upgrade:
    version = "0.1.0+day2.upgrade"
    source = source_with_version(tmp_path_factory.mktemp("source"), version)
    pids = {member: main_pid(cluster, member) for member in cluster.members}
    leader = leader_name(cluster)
    writer = Writer(cluster, "upgrade")
    writer.start()
    try:
        run = cluster.run("rolling-upgrade.yml", "-e", f"cairn_server_source={source}",
                          log="upgrade.log")  # fmt: skip
    finally:
        time.sleep(1)
        writer.stop()
    second = cluster.run("rolling-upgrade.yml", "-e", f"cairn_server_source={source}",
                         log="upgrade-2.log")  # fmt: skip
    return Upgrade(version, run, second, writer, pids, leader)


def test_rolling_upgrade_succeeds(upgrade: Upgrade) -> None:
    assert upgrade.run.returncode == 0, upgrade.run.output[-6000:]


def test_rolling_upgrade_restarts_the_followers_first_and_the_leader_last(
    upgrade: Upgrade,
) -> None:
    restarted = re.findall(r"TASK \[cairn_server : Restart (\w+)\]", upgrade.run.output)
    assert sorted(restarted) == sorted(upgrade.pids_before)
    assert restarted[-1] == upgrade.leader_before


def test_no_write_fails_during_the_rolling_upgrade(upgrade: Upgrade) -> None:
    assert upgrade.writer.failed == []
    assert len(upgrade.writer.written) > 20


def test_every_write_of_the_rolling_upgrade_is_kept(cluster: Cluster, upgrade: Upgrade) -> None:
    assert keys_under(cluster, "upgrade") >= set(upgrade.writer.written)


def test_every_member_runs_the_new_build_after_the_upgrade(
    cluster: Cluster, upgrade: Upgrade
) -> None:
    probe = (
        "/opt/cairn/current/venv/bin/python -c "
        "'import importlib.metadata as m; print(m.version(\"cairn\"))'"
    )
    for member in cluster.members:
        installed = cluster.fleet.ssh(member, probe, check=True).stdout.strip()
        assert installed == upgrade.version
        assert main_pid(cluster, member) != upgrade.pids_before[member]
    assert cluster.healthy_members() == 3


def test_a_second_rolling_upgrade_changes_nothing(upgrade: Upgrade) -> None:
    assert upgrade.second_run.returncode == 0, upgrade.second_run.output[-4000:]
    assert {c["changed"] for c in upgrade.second_run.recap().values()} == {0}


def test_rolling_upgrade_refuses_an_unhealthy_cluster(cluster: Cluster, upgrade: Upgrade) -> None:
    member = next(iter(cluster.members))
    cluster.fleet.ssh(member, "systemctl stop cairn", check=True)
    try:
        run = cluster.run("rolling-upgrade.yml", "-e", "cairn_server_ctl_retries=1",
                          log="upgrade-refused.log")  # fmt: skip
    finally:
        cluster.fleet.ssh(member, "systemctl start cairn", check=True)
        wait_until_healthy(cluster)
    assert run.returncode != 0
    assert "refusing to start a rolling upgrade" in run.output
    assert "TASK [cairn_server : Restart" not in run.output


# --- rotate-certs.yml ----------------------------------------------------------------------


@dataclass
class Rotation:
    run: PlaybookRun
    second_run: PlaybookRun
    writer: Writer
    serials_before: dict[tuple[str, int], str]
    serials_after: dict[tuple[str, int], str]
    pids_before: dict[str, str]


def served_serial(cluster: Cluster, member: str, port: int) -> str:
    """The serial number of the certificate a member presents on a port, read on the wire.

    The client port is probed from the control node with the operator's certificate; the peer
    port admits only the other members (firewall), so it is probed from one of them with that
    member's own peer certificate.
    """
    address = cluster.fleet.host(member).address
    if port == 2379:
        hello = subprocess.run(
            ["openssl", "s_client", "-connect", f"{address}:{port}",
             f"-cert={cluster.pki / 'admin.crt'}", f"-key={cluster.pki / 'admin.key'}"],
            input="", capture_output=True, text=True, timeout=30, check=False,
        ).stdout  # fmt: skip
    else:
        peer = next(m for m in cluster.members if m != member)
        hello = cluster.fleet.ssh(
            peer,
            f"openssl s_client -connect {address}:{port} -cert /etc/cairn/pki/peer.crt "
            "-key /etc/cairn/pki/peer.key </dev/null 2>/dev/null",
        ).stdout
    parsed = subprocess.run(
        ["openssl", "x509", "-noout", "-serial"],
        input=hello, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert parsed.returncode == 0, hello
    return parsed.stdout.strip()


def served_serials(cluster: Cluster) -> dict[tuple[str, int], str]:
    return {(m, port): served_serial(cluster, m, port) for m in cluster.members for port in (2379, 2380)}  # fmt: skip


@pytest.fixture(scope="module")
def rotation(cluster: Cluster, upgrade: Upgrade) -> Rotation:
    before = served_serials(cluster)
    pids = {member: main_pid(cluster, member) for member in cluster.members}
    writer = Writer(cluster, "rotation")
    writer.start()
    try:
        run = cluster.run("rotate-certs.yml", "-e", "cairn_pki_rotate_min_age=1",
                          log="rotate.log")  # fmt: skip
        time.sleep(1)
        after = served_serials(cluster)
    finally:
        writer.stop()
    # Certificates issued within the default window (an hour) are left alone.
    second = cluster.run("rotate-certs.yml", log="rotate-2.log")
    return Rotation(run, second, writer, before, after, pids)


def test_rotate_certs_succeeds(rotation: Rotation) -> None:
    assert rotation.run.returncode == 0, rotation.run.output[-6000:]


def test_every_member_serves_new_certificates_on_both_ports(rotation: Rotation) -> None:
    assert set(rotation.serials_after) == set(rotation.serials_before)
    unchanged = [key for key, serial in rotation.serials_after.items()
                 if serial == rotation.serials_before[key]]  # fmt: skip
    assert unchanged == []


def test_rotate_certs_restarts_no_member(cluster: Cluster, rotation: Rotation) -> None:
    assert {m: main_pid(cluster, m) for m in cluster.members} == rotation.pids_before


def test_no_write_fails_during_the_rotation(cluster: Cluster, rotation: Rotation) -> None:
    assert rotation.writer.failed == []
    assert rotation.writer.retried == []
    assert len(rotation.writer.written) > 10
    assert keys_under(cluster, "rotation") >= set(rotation.writer.written)


def test_a_second_rotation_within_the_window_changes_nothing(rotation: Rotation) -> None:
    assert rotation.second_run.returncode == 0, rotation.second_run.output[-4000:]
    assert {c["changed"] for c in rotation.second_run.recap().values()} == {0}
