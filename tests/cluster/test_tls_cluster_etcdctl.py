"""Three `cairn serve` processes with TLS on both ports, certificates from `cairn pki`.

The end-to-end proof that the pieces fit: members find each other over mutual TLS against
the peer CA, and etcdctl, holding only a client-CA certificate, writes on one member and reads
the value back on another.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from tests.cluster.processes import ClusterProcess, ProcessCluster, free_port
from tests.support.etcdctl import EXIT_SUCCESS, run_etcdctl
from tests.support.tls import CTL_TIMEOUTS, build_pki

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(shutil.which("etcdctl") is None, reason="needs etcdctl"),
]


def test_three_members_with_tls_on_both_ports_replicate_a_put(tmp_path: Path) -> None:
    certs = build_pki(tmp_path, members=("m1", "m2", "m3"))
    ctl = (*certs.ctl_flags(), *CTL_TIMEOUTS)
    (tmp_path / "cluster").mkdir()
    with ProcessCluster(
        tmp_path / "cluster", tls_args=certs.server_flags, ctl_flags=ctl
    ) as cluster:
        m1, m3 = cluster.members["m1"], cluster.members["m3"]
        put = run_etcdctl(m1.client_endpoint, ["put", "secured", "yes"], extra_global_flags=ctl)
        assert put.returncode == EXIT_SUCCESS, put
        got = run_etcdctl(m3.client_endpoint, ["get", "secured"], extra_global_flags=ctl)
        assert (got.returncode, got.stdout) == (EXIT_SUCCESS, "secured\nyes\n"), got
        listed = run_etcdctl(m3.client_endpoint, ["member", "list"], extra_global_flags=ctl)
        peer_urls = [line.split(", ")[3] for line in listed.stdout.splitlines()]
        assert len(peer_urls) == 3 and all(u.startswith("https://") for u in peer_urls), listed


def test_a_learner_joins_a_tls_cluster_and_is_promoted_through_a_follower(
    tmp_path: Path,
) -> None:
    # The joining member first asks the others' peer ports who it is (peer `Members` call):
    # that lookup must present its peer certificate too. The promote sent to a follower is
    # forwarded to the leader over the peer port (peer `Forward` call), also under peer TLS.
    certs = build_pki(tmp_path, members=("m1", "m2", "m3", "m4"))
    ctl = (*certs.ctl_flags(), *CTL_TIMEOUTS)
    (tmp_path / "cluster").mkdir()
    with ProcessCluster(
        tmp_path / "cluster", ("m1", "m2", "m3"), tls_args=certs.server_flags, ctl_flags=ctl
    ) as cluster:
        endpoints = cluster.endpoints()
        assert (
            run_etcdctl(endpoints, ["put", "before", "1"], extra_global_flags=ctl).returncode == 0
        )
        client_port, peer_port = free_port(), free_port()
        peer_url = f"https://127.0.0.1:{peer_port}"
        added = run_etcdctl(
            endpoints,
            ["member", "add", "m4", f"--peer-urls={peer_url}", "--learner"],
            extra_global_flags=ctl,
        )
        assert added.returncode == EXIT_SUCCESS, added
        learner_id = added.stdout.split()[1]
        initial = next(a for a in cluster.members["m1"].argv if a.startswith("--initial-cluster="))
        m4 = ClusterProcess(
            tmp_path / "cluster",
            "m4",
            f"{initial.split('=', 1)[1]},m4={peer_url}",
            client_port,
            peer_port,
            scheme="https",
            extra_args=(*certs.server_flags("m4"), "--initial-cluster-state=existing"),
        )
        cluster.members["m4"] = m4
        m4.start()
        deadline = time.monotonic() + 20
        while True:
            got = run_etcdctl(
                m4.client_endpoint, ["get", "before", "--consistency=s"], extra_global_flags=ctl
            )
            if got.stdout == "before\n1\n" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got.stdout == "before\n1\n", m4.log_path.read_text()[-3000:]

        leader = cluster.wait_for_leader()
        follower = next(m for n, m in cluster.members.items() if n != "m4" and m is not leader)
        deadline = time.monotonic() + 20
        while True:
            promoted = run_etcdctl(
                follower.client_endpoint, ["member", "promote", learner_id], extra_global_flags=ctl
            )
            if promoted.returncode == EXIT_SUCCESS or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert promoted.returncode == EXIT_SUCCESS, promoted
        assert f"Member {learner_id} promoted in cluster" in promoted.stdout
