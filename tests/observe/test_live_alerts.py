"""The alerts that matter most, proven live: a real Prometheus scrapes a real 3-member cairn
cluster (TLS, `cairn serve` processes), a fault is injected, and the page arrives through a real
Alertmanager at a webhook, with the right labels and receiver, and resolves once the fault is
gone.

Prometheus evaluates the committed rules rendered with `for:` x0.01 and windows x0.03 (a 10m
`for:` holds 6 s, a 15m window spans 27 s); Alertmanager runs the committed example
configuration (routes, inhibitions) with the webhook as both receivers. The scenarios share one
stack and run in file order, each removing its fault before the next starts.
"""

from __future__ import annotations

import base64
import math
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import plyvel
import pytest
from tests.cluster.processes import ClusterProcess, ProcessCluster, free_port
from tests.support.etcdctl import etcdctl_path, run_etcdctl, start_etcdctl
from tests.support.monitoring import (
    Alertmanager,
    NodeExporter,
    Prometheus,
    WebhookReceiver,
    http_get,
    missing_binaries,
)
from tests.support.tls import CTL_TIMEOUTS, build_pki

from cairn.mvcc.backend import HISTORY
from cairn.observe import alertmanager, alerts, dashboards, promql, render, textfile
from cairn.observe.timing import Timing
from cairn.proto.kv_pb2 import KeyValue

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.skipif(
        bool(missing_binaries()),
        reason=f"needs {', '.join(missing_binaries())} (Debian prometheus, "
        "prometheus-alertmanager, prometheus-node-exporter)",
    ),
    pytest.mark.timeout(420),
]

TIMING = Timing(for_scale=0.01, window_scale=0.03)
QUOTA_BYTES = 2_000_000
VALUE_BYTES = 20_000
FIRE_TIMEOUT = 40.0
RESOLVE_TIMEOUT = 60.0
DASHBOARD_RATE_INTERVAL = "10m"
"""Long enough to cover every scenario the stack has seen when the dashboards are checked."""

EMPTY_WHEN_HEALTHY = {
    "Time to full": "drawn only while the database grows",
}
"""Panels that rightly show nothing on the stack as the checks leave it."""


class Streams:
    """A Watch and a LeaseKeepAlive stream held open on every member by etcdctl processes.

    A member stopped with SIGTERM ends its streams (clients should move to another member), so
    etcdctl pointed at that one member exits; `open()` starts whatever is no longer running.
    Leases are short (a keep-alive every 2 s) so a keep-alive reopens its stream soon after its
    member restarts; one that lost its lease exits and gets a fresh lease from `open()`.
    """

    LEASE_TTL = "6"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.processes: dict[tuple[str, str], subprocess.Popen[bytes]] = {}

    def open(self, stack: Stack) -> None:
        with self.log_path.open("ab") as log:
            for member in stack.cluster.members.values():
                for kind in ("watch", "keepalive"):
                    running = self.processes.get((member.name, kind))
                    if running is not None and running.poll() is None:
                        continue
                    if kind == "watch":
                        args = ["watch", "--prefix", "w/"]
                    else:
                        lease = stack.ctl_run("lease", "grant", self.LEASE_TTL).stdout.split()[1]
                        args = ["lease", "keep-alive", lease]
                    self.processes[(member.name, kind)] = start_etcdctl(
                        member.client_endpoint, [*stack.ctl, *args], stdout=log, stderr=log
                    )

    def close(self) -> None:
        for process in self.processes.values():
            process.kill()
            process.wait()


@dataclass
class Stack:
    cluster: ProcessCluster
    metrics: dict[str, str]
    """member name -> its metrics address (the Prometheus instance label)."""
    faults: dict[str, Path]
    ctl: tuple[str, ...]
    prometheus: Prometheus
    alertmanager: Alertmanager
    node: NodeExporter
    webhook: WebhookReceiver
    streams: Streams

    def ctl_run(self, *args: str, endpoints: str | None = None) -> subprocess.CompletedProcess:
        return run_etcdctl(
            endpoints or self.cluster.endpoints(), list(args), extra_global_flags=self.ctl
        )

    def describe(self) -> str:
        firing = [(a["labels"], a["state"]) for a in self.prometheus.firing()]
        return f"Prometheus firing: {firing}\nalertmanager log: {self.alertmanager.log_tail(800)}"

    def wait_quiet(self, alertname: str, timeout: float = RESOLVE_TIMEOUT) -> None:
        """Until Prometheus has had no pending or firing ``alertname`` for 3 s: a scenario's
        page is then a new notification, not the tail of an earlier scenario's."""
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 3:
            if alertname in {a["labels"]["alertname"] for a in self.prometheus.active()}:
                quiet_since = time.monotonic()
            assert time.monotonic() < deadline, f"{alertname} still active\n{self.describe()}"
            time.sleep(0.5)

    def wait_fire(self, alertname: str, since: float, **labels: str) -> tuple[str, dict]:
        return self.webhook.wait_for(
            alertname, "firing", since, FIRE_TIMEOUT, labels, self.describe
        )

    def wait_resolve(self, alertname: str, since: float, **labels: str) -> tuple[str, dict]:
        return self.webhook.wait_for(
            alertname, "resolved", since, RESOLVE_TIMEOUT, labels, self.describe
        )


class Writer:
    """Steady background puts, so the WAL fsyncs and the request panels have data."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            self.stack.ctl_run("put", f"w/{n % 50}", str(n))
            n += 1
            self.stop.wait(0.2)

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("live")
    names = ("m1", "m2", "m3")
    certs = build_pki(base, names)
    ctl = (*certs.ctl_flags(), *CTL_TIMEOUTS)
    cluster = ProcessCluster(base / "cluster", names, tls_args=certs.server_flags, ctl_flags=ctl)
    (base / "cluster").mkdir(exist_ok=True)
    metrics, faults = {}, {}
    for member in cluster.members.values():
        metrics[member.name] = f"127.0.0.1:{free_port()}"
        faults[member.name] = base / f"faults-{member.name}"
        member.argv += [
            f"--listen-metrics-urls=http://{metrics[member.name]}",
            "--metrics=extensive",
            f"--quota-backend-bytes={QUOTA_BYTES}",
            "--snapshot-count=200",
            "--experimental-corrupt-check-time=2s",
            f"--experimental-test-faults-file={faults[member.name]}",
        ]
    rules_dir = base / "rendered"
    render.write(rules_dir, render.files(TIMING))
    webhook = WebhookReceiver()
    am, prom, node = Alertmanager(base), Prometheus(base), NodeExporter(base)
    streams = Streams(base / "streams.log")
    with webhook, cluster:
        try:
            am.start_with(Path(render.ALERTMANAGER_FILE).resolve(), webhook)
            node.write(
                "cairn_backup.prom", textfile.backup_timestamp_file("live", time.time() - 60)
            )
            node.start_textfile_only()
            prom.start_with(
                rules_dir / render.RULES_FILE,
                {"cairn": list(metrics.values()), "node": [node.address]},
                am,
            )
            stack = Stack(cluster, metrics, faults, ctl, prom, am, node, webhook, streams)
            streams.open(stack)
            assert prom.wait_until('up{job="cairn"} == 1', 30), prom.log_tail()
            yield stack
        finally:
            streams.close()
            for daemon in (prom, am, node):
                daemon.stop()


def _leader(stack: Stack) -> ClusterProcess:
    return stack.cluster.wait_for_leader(timeout=30)


def test_every_metric_the_dashboards_and_alerts_read_is_exported_by_a_member(
    stack: Stack,
) -> None:
    used: set[str] = set()
    for make in dashboards.DASHBOARDS.values():
        for panel in make()["panels"]:
            for target in panel.get("targets", []):
                used |= promql.metric_names(target["expr"])
    for group in alerts.rule_groups()["groups"]:
        for rule in group["rules"]:
            used |= promql.metric_names(rule["expr"])
    text = http_get(f"http://{stack.metrics['m1']}/metrics").decode()
    exported = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    not_from_members = promql.SCRAPE_METRICS | {s.name for s in textfile.TEXTFILE_METRICS}
    assert used - not_from_members <= exported, sorted(used - not_from_members - exported)


def test_repeated_leader_kills_raise_the_leader_changes_warning(stack: Stack) -> None:
    stack.wait_quiet("etcdHighNumberOfLeaderChanges")
    since = time.time()
    for _ in range(5):
        leader = _leader(stack)
        leader.kill()
        _leader(stack)
        leader.start()
    receiver, alert = stack.wait_fire("etcdHighNumberOfLeaderChanges", since, job="cairn")
    assert receiver == alertmanager.TICKETS
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["runbook_url"] == "docs/runbooks/etcdHighNumberOfLeaderChanges.md"
    stack.cluster.wait_for_leader(timeout=30)
    stack.wait_resolve("etcdHighNumberOfLeaderChanges", since, job="cairn")


def test_slow_wal_fsync_pages_and_the_warning_is_inhibited(stack: Stack) -> None:
    leader = _leader(stack)
    slow = next(m for m in stack.cluster.members.values() if m is not leader)
    instance = stack.metrics[slow.name]
    stack.wait_quiet("etcdHighFsyncDurations")
    since = time.time()
    with Writer(stack):
        stack.faults[slow.name].write_text("wal-fsync-delay 1500ms\n")
        try:
            receiver, alert = stack.wait_fire(
                "etcdHighFsyncDurations", since, instance=instance, severity="critical"
            )
            assert receiver == alertmanager.PAGER
            assert alert["labels"]["job"] == "cairn"
            assert instance in alert["annotations"]["description"]
        finally:
            stack.faults[slow.name].write_text("")
        stack.wait_resolve("etcdHighFsyncDurations", since, instance=instance, severity="critical")
    warnings = [
        a
        for r, a in stack.webhook.alerts(since)
        if a["labels"]["alertname"] == "etcdHighFsyncDurations"
        and a["labels"]["severity"] == "warning"
    ]
    assert warnings == [], "the critical fsync alert should inhibit its warning"


def incompressible() -> str:
    return base64.b64encode(os.urandom(VALUE_BYTES * 3 // 4)).decode()


def _db_used_ratio(stack: Stack, member: ClusterProcess) -> float:
    text = http_get(f"http://{stack.metrics[member.name]}/metrics").decode()
    size = float(re.search(r"^etcd_mvcc_db_total_size_in_bytes (\S+)", text, re.M).group(1))
    return size / QUOTA_BYTES


def _put_big(stack: Stack, n: int) -> bool:
    return stack.ctl_run("put", f"big/{n:04d}", incompressible()).returncode == 0


def _free_space(stack: Stack) -> None:
    """What the runbooks tell the operator: delete, compact, defragment every member."""
    assert stack.ctl_run("del", "big/", "--prefix").returncode == 0
    revision = re.search(r'"revision":(\d+)', stack.ctl_run("get", "x", "-w", "json").stdout)
    assert revision is not None
    assert stack.ctl_run("compact", revision.group(1)).returncode == 0
    assert stack.ctl_run("defrag", "--cluster").returncode == 0


def test_a_database_past_95_percent_of_its_quota_pages_until_space_is_freed(
    stack: Stack,
) -> None:
    leader = _leader(stack)
    instance = stack.metrics[leader.name]
    stack.wait_quiet("etcdDatabaseQuotaLowSpace")
    since = time.time()
    written = 0
    while _db_used_ratio(stack, leader) < 0.96:
        assert _put_big(stack, written), "NOSPACE before the database reached 96% of the quota"
        written += 1
        assert written < 3 * QUOTA_BYTES // VALUE_BYTES, "the database never grew to the quota"
    receiver, alert = stack.wait_fire("etcdDatabaseQuotaLowSpace", since, instance=instance)
    assert (receiver, alert["labels"]["severity"]) == (alertmanager.PAGER, "critical")
    assert "of --quota-backend-bytes" in alert["annotations"]["description"]
    _free_space(stack)
    stack.wait_resolve("etcdDatabaseQuotaLowSpace", since, instance=instance)


def test_a_full_quota_pages_the_nospace_alarm_until_it_is_disarmed(stack: Stack) -> None:
    stack.wait_quiet("cairnNoSpaceAlarm")
    since = time.time()
    written = 0
    while _put_big(stack, written):
        written += 1
        assert written < 3 * QUOTA_BYTES // VALUE_BYTES, "the quota never refused a put"
    receiver, alert = stack.wait_fire("cairnNoSpaceAlarm", since, alarm_type="NOSPACE")
    assert (receiver, alert["labels"]["job"]) == (alertmanager.PAGER, "cairn")
    _free_space(stack)
    assert stack.ctl_run("alarm", "disarm").returncode == 0
    stack.wait_resolve("cairnNoSpaceAlarm", since, alarm_type="NOSPACE")


def _rewrite_latest_value(member: ClusterProcess, key: bytes, value: bytes) -> bytes:
    """Change the value of ``key``'s latest history record in the stopped member's LevelDB
    (the WAL is untouched, so only a corruption check can notice); returns the old value."""
    db = plyvel.DB(str(stack_data_dir(member) / "member" / "db"))
    try:
        raw, record = [
            (raw, record)
            for raw, record in db.iterator(prefix=HISTORY)
            if KeyValue.FromString(record[1:]).key == key
        ][-1]
        kv = KeyValue.FromString(record[1:])
        old, kv.value = kv.value, value
        db.put(raw, record[:1] + kv.SerializeToString())
        return old
    finally:
        db.close()


def stack_data_dir(member: ClusterProcess) -> Path:
    return Path(next(a for a in member.argv if a.startswith("--data-dir=")).split("=", 1)[1])


def test_a_member_with_altered_data_pages_the_corrupt_alarm_until_repaired(stack: Stack) -> None:
    leader = _leader(stack)
    victim = next(m for m in stack.cluster.members.values() if m is not leader)
    assert stack.ctl_run("put", "corrupt/k", "original").returncode == 0
    deadline = time.monotonic() + 20
    while stack.ctl_run(
        "get", "corrupt/k", "--consistency=s", endpoints=victim.client_endpoint
    ).stdout.split() != ["corrupt/k", "original"]:
        assert time.monotonic() < deadline, "the follower never caught up"
        time.sleep(0.2)
    stack.wait_quiet("cairnCorruptAlarm")
    since = time.time()
    victim.stop()
    original = _rewrite_latest_value(victim, b"corrupt/k", b"tampered")
    victim.start()
    receiver, alert = stack.wait_fire("cairnCorruptAlarm", since, alarm_type="CORRUPT")
    assert (receiver, alert["labels"]["severity"]) == (alertmanager.PAGER, "critical")
    victim.stop()
    _rewrite_latest_value(victim, b"corrupt/k", original)
    victim.start()
    assert stack.ctl_run("alarm", "disarm").returncode == 0
    stack.wait_resolve("cairnCorruptAlarm", since, alarm_type="CORRUPT")
    assert "CORRUPT" not in stack.ctl_run("alarm", "list").stdout


def test_an_isolated_member_pages_no_leader_until_its_links_heal(stack: Stack) -> None:
    leader = _leader(stack)
    victim = next(m for m in stack.cluster.members.values() if m is not leader)
    others = [m.member_id for m in stack.cluster.members.values() if m is not victim]
    instance = stack.metrics[victim.name]
    stack.wait_quiet("etcdNoLeader")
    since = time.time()
    stack.faults[victim.name].write_text("".join(f"{peer}\n" for peer in others))
    try:
        receiver, alert = stack.wait_fire("etcdNoLeader", since, instance=instance)
        assert (receiver, alert["labels"]["severity"]) == (alertmanager.PAGER, "critical")
        assert alert["annotations"]["description"] == (
            f'cluster "cairn": member {instance} has no leader; it cannot serve writes or '
            "linearizable reads."
        )
    finally:
        stack.faults[victim.name].write_text("")
    stack.wait_resolve("etcdNoLeader", since, instance=instance)
    leaderless = {
        a["labels"].get("instance")
        for _, a in stack.webhook.alerts(since)
        if a["labels"]["alertname"] == "etcdNoLeader"
    }
    assert leaderless == {instance}, "only the isolated member lost its leader"


def test_a_killed_member_pages_members_down_until_it_is_back(stack: Stack) -> None:
    leader = _leader(stack)
    victim = next(m for m in stack.cluster.members.values() if m is not leader)
    stack.wait_quiet("etcdMembersDown")
    since = time.time()
    victim.kill()
    try:
        receiver, alert = stack.wait_fire("etcdMembersDown", since, job="cairn")
        assert (receiver, alert["labels"]["severity"]) == (alertmanager.PAGER, "critical")
        assert alert["annotations"]["description"].startswith('cluster "cairn": 1 member(s) down')
    finally:
        victim.start()
    stack.wait_resolve("etcdMembersDown", since, job="cairn")
    firing_names = {a["labels"]["alertname"] for _, a in stack.webhook.alerts(since)}
    assert "etcdInsufficientMembers" not in firing_names


def test_an_old_backup_warns_until_a_fresh_one_is_reported(stack: Stack) -> None:
    stack.wait_quiet("cairnBackupTooOld")
    since = time.time()
    stack.node.write(
        "cairn_backup.prom", textfile.backup_timestamp_file("live", time.time() - 30 * 3600)
    )
    receiver, alert = stack.wait_fire("cairnBackupTooOld", since, cluster="live")
    assert (receiver, alert["labels"]["severity"]) == (alertmanager.TICKETS, "warning")
    stack.node.write("cairn_backup.prom", textfile.backup_timestamp_file("live", time.time()))
    stack.wait_resolve("cairnBackupTooOld", since, cluster="live")


def _finite(result: list[dict]) -> bool:
    return any(math.isfinite(float(series["value"][1])) for series in result)


@pytest.mark.parametrize("board_name", sorted(dashboards.DASHBOARDS))
def test_every_dashboard_panel_shows_data_from_the_live_cluster(
    stack: Stack, board_name: str
) -> None:
    stack.streams.open(stack)
    with Writer(stack):
        time.sleep(3)
        board = dashboards.DASHBOARDS[board_name]()
        variables = {
            "$__rate_interval": DASHBOARD_RATE_INTERVAL,
            "$cluster": "cairn",
            "$instance": stack.metrics["m1"] if "member" in board_name else ".*",
        }
        empty = []
        for panel in board["panels"]:
            if panel["type"] == "row" or panel["title"] in EMPTY_WHEN_HEALTHY:
                continue
            for target in panel["targets"]:
                expr = target["expr"]
                for variable, value in variables.items():
                    expr = expr.replace(variable, value)
                if not _finite(stack.prometheus.query(expr)):
                    empty.append((panel["title"], expr))
    assert empty == [], "\n".join(f"{title}: {expr}" for title, expr in empty)
