"""Three `cairn serve` processes with TLS on both ports, certificates from `cairn pki`.

The end-to-end proof that the pieces fit: members find each other over mutual TLS against
the peer CA, and etcdctl, holding only a client-CA certificate, writes on one member and reads
the value back on another.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.cluster.processes import ProcessCluster
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
