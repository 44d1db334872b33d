"""Auto-compaction on real `cairn serve` processes, next to the real etcd 3.4 where the
schedule allows it (periodic mode with a short retention; etcd's revision mode checks only
every 5 minutes, so cairn's is tested alone with a short test-only interval)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from tests.cluster.processes import ProcessCluster
from tests.support.etcdctl import etcdctl_path, run_etcdctl
from tests.support.servers import (
    ServerKind,
    ServerProcess,
    etcd_path,
    free_port,
    server_command,
    start_server,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(90),
]
needs_etcd = [
    pytest.mark.etcd,
    pytest.mark.skipif(etcd_path() is None, reason="needs etcd (Debian etcd-server)"),
]

COMPACTED = "Error: etcdserver: mvcc: required revision has been compacted"
STARTING = re.compile(r"Starting auto-compaction at revision (\d+) \(retention: ([^)]*)\)")


def put_for(server: ServerProcess, seconds: float) -> None:
    """Write `k` every 0.2 s for `seconds`, so revisions move while the compactor samples."""
    deadline = time.monotonic() + seconds
    written = 0
    while time.monotonic() < deadline:
        assert run_etcdctl(server.client_url, ["put", "k", f"v{written}"]).returncode == 0
        written += 1
        time.sleep(0.2)


def get_at(server: ServerProcess, revision: int) -> tuple[int, str]:
    result = run_etcdctl(server.client_url, ["get", "k", f"--rev={revision}"])
    return result.returncode, (result.stdout + result.stderr).strip().splitlines()[-1]


@pytest.mark.parametrize("kind", [pytest.param("etcd", marks=needs_etcd), "cairn"])
def test_periodic_mode_compacts_to_the_revision_seen_a_retention_ago(
    tmp_path: Path, kind: ServerKind
) -> None:
    flags = ["--auto-compaction-mode=periodic", "--auto-compaction-retention=2s"]
    with start_server(kind, tmp_path / kind, extra_args=flags) as server:
        put_for(server, 4.5)
        started = STARTING.findall(server.log_path.read_text(errors="replace"))
        assert get_at(server, 2) == (1, COMPACTED)
    # The first compaction, after one retention, goes to the revision at the start.
    assert started[0] == ("1", "2s")
    assert len(started) >= 2
    assert int(started[1][0]) > 1


def test_revision_mode_keeps_the_latest_revisions(tmp_path: Path) -> None:
    flags = [
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=3",
        "--experimental-test-revision-compaction-interval=300ms",
    ]
    with start_server("cairn", tmp_path, extra_args=flags) as server:
        for i in range(10):
            assert run_etcdctl(server.client_url, ["put", "k", f"v{i}"]).returncode == 0
        deadline = time.monotonic() + 10
        while ("8", "3 revisions") not in STARTING.findall(server.log_path.read_text()):
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.1)
        assert get_at(server, 7) == (1, COMPACTED)
        assert get_at(server, 8) == (0, "v6")


def test_without_auto_compaction_flags_nothing_is_compacted(tmp_path: Path) -> None:
    with start_server("cairn", tmp_path) as server:
        put_for(server, 2.5)
        assert get_at(server, 2) == (0, "v0")
        assert "auto-compaction" not in server.log_path.read_text(errors="replace")


def exit_message(kind: ServerKind, tmp_path: Path, flags: list[str]) -> tuple[int, str]:
    """Start a server with bad flags; it must exit at once. Returns (code, its output)."""
    peer = f"http://127.0.0.1:{free_port()}"
    client = f"http://127.0.0.1:{free_port()}"
    argv = [
        *server_command(kind),
        f"--data-dir={tmp_path / kind}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        *flags,
    ]
    done = subprocess.run(argv, capture_output=True, timeout=30, check=False, text=True)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--auto-compaction-mode=foo", "--auto-compaction-retention=1"],
            "error verifying flags, unknown auto-compaction-mode \"foo\". See 'etcd --help'.",
        ),
        (
            ["--auto-compaction-retention=abc"],
            'error parsing CompactionRetention: time: invalid duration "abc"',
        ),
        (
            ["--auto-compaction-mode=revision", "--auto-compaction-retention=-5"],
            'error parsing CompactionRetention: time: missing unit in duration "-5"',
        ),
        (
            ["--experimental-corrupt-check-time=5"],
            'invalid value "5" for flag -experimental-corrupt-check-time: parse error',
        ),
    ],
)
@pytest.mark.etcd
@pytest.mark.skipif(etcd_path() is None, reason="needs etcd (Debian etcd-server)")
def test_bad_flags_are_refused_with_etcds_message(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    codes = set()
    for kind in ("etcd", "cairn"):
        code, output = exit_message(kind, tmp_path, flags)  # type: ignore[arg-type]
        assert message in output, (kind, output)
        codes.add(code)
    assert len(codes) == 1 and codes != {0}, codes


def test_only_the_leader_compacts_and_every_member_applies_it(tmp_path: Path) -> None:
    cluster = ProcessCluster(tmp_path)
    for member in cluster.members.values():
        member.argv.extend(
            [
                "--auto-compaction-mode=revision",
                "--auto-compaction-retention=3",
                "--experimental-test-revision-compaction-interval=300ms",
            ]
        )
    with cluster:
        leader = cluster.wait_for_leader()
        for i in range(10):
            assert run_etcdctl(leader.client_endpoint, ["put", "k", f"v{i}"]).returncode == 0
        deadline = time.monotonic() + 10
        while ("8", "3 revisions") not in STARTING.findall(leader.log_path.read_text()):
            assert time.monotonic() < deadline, "the leader never compacted"
            time.sleep(0.1)
        for member in cluster.members.values():
            # Local reads: each member applied the leader's compaction itself.
            while (
                not run_etcdctl(member.client_endpoint, ["get", "k", "--rev=7", "--consistency=s"])
                .stderr.rstrip()
                .endswith(COMPACTED)
            ):
                assert time.monotonic() < deadline, f"{member.name} never applied the compaction"
                time.sleep(0.1)
            if member is not leader:
                assert not STARTING.search(member.log_path.read_text()), member.name
