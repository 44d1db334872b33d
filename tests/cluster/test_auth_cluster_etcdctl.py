"""Auth on a cluster of real `cairn serve` processes: a token issued through one member is
accepted by every member, followers forward permitted writes and refuse the others, the
leader still expires leases, and users, roles and the enabled flag survive a restart of every
member and reach a member that catches up by snapshot image. Passwords never appear in clear
in a data dir (WAL and LevelDB).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import grpc
import pytest
from tests.cluster.processes import ClusterProcess, ProcessCluster, free_port
from tests.cluster.test_membership_etcdctl import peer_url_of
from tests.cluster.test_snapshot_catchup_etcdctl import SMALL_SNAPSHOTS, wait_log
from tests.support.etcdctl import run_etcdctl
from tests.support.servers import ServerProcess

from cairn.proto import rpc_pb2 as pb
from cairn.proto.rpc_pb2_grpc import AuthStub, KVStub

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = ("--user", "root:rootpw")
ALICE = ("--user", "alice:pw")
SETUP = (
    ("user", "add", "root:rootpw"),
    ("user", "add", "alice:pw"),
    ("role", "add", "app"),
    ("role", "grant-permission", "app", "readwrite", "--prefix", "app/"),
    ("user", "grant-role", "alice", "app"),
    ("auth", "enable"),  # adds the root role and grants it to root, as etcd's etcdctl does
)


def ctl(endpoint: str, *args: str, stdin: str | None = None) -> tuple[int, str]:
    """Exit status, and stdout on success or etcdctl's final `Error:` line on failure."""
    result = run_etcdctl(endpoint, ["--command-timeout=5s", *args], stdin=stdin)
    if result.returncode == 0:
        return 0, result.stdout.strip()
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    return result.returncode, errors[-1] if errors else result.stderr.strip()


def ok(endpoint: str, *args: str) -> str:
    code, out = ctl(endpoint, *args)
    assert code == 0, f"etcdctl {' '.join(args)}: {out}"
    return out


def set_up_auth(endpoint: str) -> None:
    for args in SETUP:
        ok(endpoint, *args)


def authenticate(endpoint: str, name: str, password: str) -> str:
    with grpc.insecure_channel(endpoint) as ch:
        request = pb.AuthenticateRequest(name=name, password=password)
        return AuthStub(ch).Authenticate(request, timeout=10).token


def range_with(endpoint: str, token: str, key: bytes) -> tuple[str, list[bytes]]:
    with grpc.insecure_channel(endpoint) as ch:
        try:
            r = KVStub(ch).Range(pb.RangeRequest(key=key), metadata=[("token", token)], timeout=10)
        except grpc.RpcError as error:
            return str(error.details()), []
        return "OK", [kv.value for kv in r.kvs]


def test_a_token_from_one_member_works_on_all_and_followers_check_forwarded_writes(
    tmp_path: Path,
) -> None:
    with ProcessCluster(tmp_path, ctl_flags=ROOT) as cluster:
        leader = cluster.wait_for_leader()
        followers = [m for m in cluster.running() if m is not leader]
        set_up_auth(leader.client_endpoint)
        ok(leader.client_endpoint, *ROOT, "put", "app/x", "1")

        token = authenticate(followers[0].client_endpoint, "alice", "pw")
        for member in cluster.running():
            assert range_with(member.client_endpoint, token, b"app/x") == ("OK", [b"1"])
            assert range_with(member.client_endpoint, token, b"other") == (
                "etcdserver: permission denied",
                [],
            )

        follower = followers[1].client_endpoint
        assert ctl(follower, *ALICE, "put", "app/y", "2") == (0, "OK")
        assert ctl(follower, *ALICE, "put", "other", "2") == (
            1,
            "Error: etcdserver: permission denied",
        )
        assert ctl(follower, "put", "app/z", "2") == (1, "Error: etcdserver: user name is empty")
        assert ok(leader.client_endpoint, *ROOT, "get", "other") == ""


def test_the_leader_still_expires_leases_when_auth_is_enabled(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path, ctl_flags=ROOT) as cluster:
        leader = cluster.wait_for_leader()
        set_up_auth(leader.client_endpoint)
        granted = ok(leader.client_endpoint, *ALICE, "lease", "grant", "2")
        lease_id = granted.split()[1]
        ok(leader.client_endpoint, *ALICE, "put", "app/leased", "v", "--lease", lease_id)
        deadline = time.monotonic() + 15
        while ok(leader.client_endpoint, *ROOT, "get", "app/leased"):
            assert time.monotonic() < deadline, "the leased key outlived its lease"
            time.sleep(0.3)
        for member in cluster.running():
            assert ok(member.client_endpoint, *ROOT, "get", "app/leased") == ""


def test_auth_survives_restarts_and_reaches_a_member_caught_up_by_snapshot(
    tmp_path: Path,
) -> None:
    cluster = ProcessCluster(tmp_path, ctl_flags=ROOT)
    for member in cluster.members.values():
        member.argv.extend(SMALL_SNAPSHOTS)
    with cluster:
        leader = cluster.wait_for_leader()
        set_up_auth(leader.client_endpoint)
        ok(leader.client_endpoint, *ROOT, "put", "app/x", "1")
        stale = authenticate(leader.client_endpoint, "alice", "pw")

        for member in cluster.members.values():
            member.kill()
        for member in cluster.members.values():
            member.start()
        leader = cluster.wait_for_leader()
        endpoint = leader.client_endpoint
        # Tokens live in memory only (as in etcd): clients authenticate again.
        assert range_with(endpoint, stale, b"app/x")[0] == "etcdserver: invalid auth token"
        assert ctl(endpoint, "get", "app/x") == (1, "Error: etcdserver: user name is empty")
        assert ok(endpoint, *ALICE, "get", "app/x", "--print-value-only") == "1"
        assert ctl(endpoint, *ALICE, "get", "other")[1] == "Error: etcdserver: permission denied"

        # Enough entries (as root) that the leader's log no longer reaches back to the start.
        root_endpoint = ",".join(m.client_endpoint for m in cluster.running())
        put_txns_as_root(root_endpoint, 120)
        wait_log(leader, re.compile(r"log compacted to ([1-9][0-9]*)"))
        m4 = add_member(cluster, tmp_path, endpoint)
        wait_log(m4, re.compile(r"installed an image at index (\d+)"))
        m4_endpoint = m4.client_endpoint
        deadline = time.monotonic() + 30
        while ctl(m4_endpoint, *ALICE, "get", "app/x", "--print-value-only") != (0, "1"):
            assert time.monotonic() < deadline, ctl(m4_endpoint, *ALICE, "get", "app/x")
            time.sleep(0.3)
        assert ctl(m4_endpoint, "get", "app/x") == (1, "Error: etcdserver: user name is empty")
        assert ctl(m4_endpoint, *ALICE, "get", "other")[1] == (
            "Error: etcdserver: permission denied"
        )
        assert ok(m4_endpoint, *ROOT, "user", "list").split() == ["alice", "root"]


def put_txns_as_root(endpoints: str, txns: int) -> None:
    for t in range(txns):
        code, out = ctl(endpoints, *ROOT, "put", f"fill/{t:04d}", "v")
        assert code == 0, out


def add_member(cluster: ProcessCluster, tmp_path: Path, endpoint: str) -> ClusterProcess:
    """`member add m4` (a voter: a learner could not authenticate), started to join."""
    peer_port, client_port = free_port(), free_port()
    peer_url = f"http://127.0.0.1:{peer_port}"
    added = json.loads(
        ok(endpoint, *ROOT, "member", "add", "m4", f"--peer-urls={peer_url}", "-w", "json")
    )
    assert added["member"]["ID"]
    founders = ",".join(f"{m.name}={peer_url_of(m)}" for m in cluster.members.values())
    m4 = ClusterProcess(tmp_path, "m4", f"{founders},m4={peer_url}", client_port, peer_port)
    m4.argv.extend([*SMALL_SNAPSHOTS, "--initial-cluster-state=existing"])
    cluster.members["m4"] = m4
    m4.start()
    return m4


def test_passwords_never_appear_in_clear_in_the_data_dir(tmp_path: Path) -> None:
    first, second = b"Clear-Text-Secret-1", b"Clear-Text-Secret-2"
    server = ServerProcess("cairn", tmp_path / "m", extra_args=["--bcrypt-cost=4"]).start()
    try:
        url = server.client_url
        assert run_etcdctl(url, ["user", "add", f"root:{first.decode()}"]).returncode == 0
        assert run_etcdctl(url, ["auth", "enable"]).returncode == 0
        as_root = ["--user", f"root:{first.decode()}"]
        changed = run_etcdctl(
            url, [*as_root, "user", "passwd", "root", "--interactive=false"], stdin=second.decode()
        )
        assert changed.returncode == 0, changed.stderr
        assert run_etcdctl(url, ["--user", f"root:{second.decode()}", "get", "x"]).returncode == 0
    finally:
        server.stop()
    stored = b"".join(p.read_bytes() for p in server.data_dir.rglob("*") if p.is_file())
    assert b"$2b$04$" in stored  # the hashes are there (so this looked in the right files)
    assert first not in stored
    assert second not in stored
