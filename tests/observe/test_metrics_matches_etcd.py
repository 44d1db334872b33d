"""Differential: the real etcd 3.4 and cairn, started with the same flags (one member each,
``--listen-metrics-urls``), driven with the same etcdctl commands.

Every catalog metric etcd also exports must have etcd's type, label names and buckets; the mvcc
counters must move by the same amounts for the same requests; /health must answer the same
status and verdict, also under a NOSPACE alarm with etcd's ``exclude`` and ``serializable``
parameters (which etcd 3.4.23 honours; it leaves out the ``reason`` field cairn adds as 3.5 does)
and without a leader (where 3.4.23 ignores ``serializable``, a difference cairn keeps: it
follows 3.5).
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.observe.exposition import Family, fetch, scrape
from tests.support.etcdctl import etcdctl_path, run_etcdctl
from tests.support.servers import ServerKind, ServerProcess, etcd_path, free_port

from cairn.observe.catalog import CATALOG

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcd_path() is None, reason="needs etcd (Debian etcd-server)"),
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(180),
]

KINDS: tuple[ServerKind, ...] = ("etcd", "cairn")

EXPECTED_IN_BOTH = {
    "etcd_server_has_leader",
    "etcd_server_is_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_server_heartbeat_send_failures_total",
    "etcd_server_slow_apply_total",
    "etcd_server_quota_backend_bytes",
    "etcd_server_version",
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_backend_commit_duration_seconds",
    "etcd_disk_wal_write_bytes_total",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_mvcc_put_total",
    "etcd_mvcc_delete_total",
    "etcd_mvcc_range_total",
    "etcd_mvcc_txn_total",
    "etcd_debugging_mvcc_keys_total",
    "etcd_debugging_mvcc_db_compaction_keys_total",
    "etcd_network_client_grpc_sent_bytes_total",
    "etcd_network_client_grpc_received_bytes_total",
    "grpc_server_started_total",
    "grpc_server_handled_total",
    "grpc_server_msg_received_total",
    "grpc_server_msg_sent_total",
    "process_resident_memory_bytes",
}
"""Metrics the operators' dashboards and alerts use that a lone etcd 3.4 member exports."""

MVCC_COUNTERS = ("etcd_mvcc_put_total", "etcd_mvcc_range_total", "etcd_mvcc_delete_total")

TXN_TWO_PUTS = 'value("t/a") = "x"\n\nput t/a "1"\nput t/b "2"\n\n\n'
"""etcdctl txn's interactive form: compares, success ops, failure ops, each ended by a blank."""


class Member:
    """A one-member server of either kind with a metrics URL."""

    def __init__(self, kind: ServerKind, base: Path, extra: tuple[str, ...] = ()) -> None:
        self.metrics_url = f"http://127.0.0.1:{free_port()}"
        self.server = ServerProcess(
            kind, base / kind, extra_args=(f"--listen-metrics-urls={self.metrics_url}", *extra)
        )

    def ctl(self, *args: str, stdin: str | None = None) -> str:
        result = run_etcdctl(self.server.client_url, list(args), stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def scrape(self) -> dict[str, Family]:
        return scrape(self.metrics_url)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[dict[ServerKind, Member]]:
    members = {kind: Member(kind, tmp_path) for kind in KINDS}
    try:
        for member in members.values():
            member.server.start()
        yield members
    finally:
        for member in members.values():
            member.server.stop()


def test_metrics_both_export_have_etcds_type_labels_and_buckets(
    pair: dict[ServerKind, Member],
) -> None:
    for member in pair.values():
        member.ctl("put", "k", "v")
        member.ctl("get", "k")
    etcd, cairn = pair["etcd"].scrape(), pair["cairn"].scrape()
    shared = [entry.name for entry in CATALOG if entry.name in etcd]
    assert set(shared) >= EXPECTED_IN_BOTH
    for name in shared:
        assert name in cairn, name
        ours, theirs = cairn[name], etcd[name]
        assert ours.type == theirs.type, name
        if ours.samples and theirs.samples:
            assert ours.label_names == theirs.label_names, name
            assert sorted(ours.buckets) == pytest.approx(sorted(theirs.buckets)), name


def test_the_same_requests_move_the_mvcc_counters_by_the_same_amounts(
    pair: dict[ServerKind, Member],
) -> None:
    def counters(member: Member) -> dict[str, float]:
        exported = member.scrape()
        return {name: exported[name].value() for name in (*MVCC_COUNTERS, "etcd_mvcc_txn_total")}

    moved = {}
    for kind, member in pair.items():
        before = counters(member)
        for i in range(3):
            member.ctl("put", f"d/{i}", "v")
        member.ctl("get", "d/0")
        member.ctl("get", "d/", "--prefix")
        member.ctl("del", "d/1")
        member.ctl("txn", stdin=TXN_TWO_PUTS)
        after = counters(member)
        moved[kind] = {name: after[name] - before[name] for name in after}
    assert moved["cairn"] == moved["etcd"]
    assert moved["etcd"]["etcd_mvcc_put_total"] >= 3


def test_health_answers_like_etcd(pair: dict[ServerKind, Member]) -> None:
    answers = {}
    for kind, member in pair.items():
        status, body = fetch(f"{member.metrics_url}/health")
        answers[kind] = (status, json.loads(body)["health"])
    assert answers["cairn"] == answers["etcd"] == (200, "true")


def test_version_has_etcds_fields(pair: dict[ServerKind, Member]) -> None:
    """etcd 3.4 serves /version on its client URL (an HTTP mux beside gRPC); cairn's client
    port speaks only gRPC, so cairn serves it on the metrics URL instead."""
    etcd_status, etcd_body = fetch(f"{pair['etcd'].server.client_url}/version")
    cairn_status, cairn_body = fetch(f"{pair['cairn'].metrics_url}/version")
    assert etcd_status == cairn_status == 200
    assert set(json.loads(cairn_body)) == set(json.loads(etcd_body))


QUOTA_BYTES = 400_000
VALUE_BYTES = 20_000
HEALTH_QUERIES = (
    "",
    "?exclude=NOSPACE",
    "?serializable=true",
    "?exclude=NOSPACE&serializable=true",
)


def fill_until_nospace(member: Member) -> None:
    for i in range(80):
        value = base64.b64encode(os.urandom(VALUE_BYTES * 3 // 4)).decode()
        result = run_etcdctl(member.server.client_url, ["put", f"fill/{i:03d}", value])
        if result.returncode != 0:
            assert "database space exceeded" in result.stderr, result.stderr
            return
    raise AssertionError(f"{member.server.kind} never ran out of space")


def test_a_nospace_alarm_fails_health_unless_excluded_as_in_etcd(tmp_path: Path) -> None:
    members = {
        kind: Member(kind, tmp_path, (f"--quota-backend-bytes={QUOTA_BYTES}",)) for kind in KINDS
    }
    try:
        verdicts = {}
        for kind, member in members.items():
            member.server.start()
            fill_until_nospace(member)
            assert "alarm:NOSPACE" in member.ctl("alarm", "list")
            verdicts[kind] = []
            for query in HEALTH_QUERIES:
                status, body = fetch(f"{member.metrics_url}/health{query}")
                verdicts[kind].append((query, status, json.loads(body)["health"]))
            if kind == "cairn":
                assert fetch(f"{member.metrics_url}/health") == (
                    503,
                    '{"health":"false","reason":"ALARM NOSPACE"}',
                )
                alarm = member.scrape()["cairn_server_alarm_active"]
                assert alarm.value(alarm_type="NOSPACE") == 1
                assert alarm.value(alarm_type="CORRUPT") == 0
        assert verdicts["cairn"] == verdicts["etcd"]
        assert [status for _, status, _ in verdicts["etcd"]] == [503, 200, 503, 200]
    finally:
        for member in members.values():
            member.server.stop()


def _two_member_pair(kind: ServerKind, base: Path) -> tuple[Member, Member]:
    """Two members of one cluster (so killing one leaves the other without a leader)."""
    peers = {name: free_port() for name in ("a", "b")}
    initial = ",".join(f"{name}=http://127.0.0.1:{port}" for name, port in peers.items())
    members = []
    for name, port in peers.items():
        member = Member(kind, base / name, (f"--initial-cluster={initial}",))
        member.server = ServerProcess(
            kind,
            base / name / kind,
            name=name,
            peer_port=port,
            extra_args=member.server.extra_args,
        )
        members.append(member)
    with ThreadPoolExecutor(2) as pool:  # neither serves before the other is up
        list(pool.map(lambda m: m.server.start(), members))
    return members[0], members[1]


def test_without_a_leader_health_fails_as_in_etcd(tmp_path: Path) -> None:
    """Plain /health: 503 on both. With ?serializable=true etcd 3.4.23 still fails (it checks
    the leader anyway); cairn follows etcd 3.5, which skips the leader check and reads locally."""
    started: list[Member] = []
    try:
        verdicts = {}
        for kind in KINDS:
            survivor, victim = _two_member_pair(kind, tmp_path / kind)
            started += [survivor, victim]
            victim.server.kill()
            deadline = time.monotonic() + 20
            while _verdict(survivor, "")[0] != 503:
                assert time.monotonic() < deadline, f"{kind} kept answering healthy"
                time.sleep(0.2)
            verdicts[kind] = {
                query: _verdict(survivor, query) for query in ("", "?serializable=true")
            }
        assert verdicts["cairn"][""] == verdicts["etcd"][""] == (503, "false")
        assert verdicts["etcd"]["?serializable=true"] == (503, "false")
        assert verdicts["cairn"]["?serializable=true"] == (200, "true")
    finally:
        for member in started:
            member.server.stop()


def _verdict(member: Member, query: str) -> tuple[int, str]:
    status, body = fetch(f"{member.metrics_url}/health{query}", timeout=15)
    return status, json.loads(body)["health"]
