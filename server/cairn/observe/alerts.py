"""cairn's Prometheus alert rules, defined as code from the metric catalog.

The ``etcd`` group covers what the etcd monitoring mixin alerts on, with its thresholds
(`thresholds.py`), so an operator's expectations from etcd hold. The ``cairn`` group adds what
only cairn knows: active alarms, expiring certificates, a member that stopped applying, and a
stale backup. Every rule carries severity, summary, a description quoting the measured value,
and a runbook_url to ``docs/runbooks/<alert>.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cairn.observe import thresholds as t
from cairn.observe.promql import quantile_over, series
from cairn.observe.timing import PRODUCTION, Timing

SELECTOR = 'job=~".*(etcd|cairn).*"'
"""Which scrape jobs the rules watch: Prometheus jobs named like etcd or cairn."""

CLUSTER_LABEL = "job"
"""The label that tells clusters apart (one scrape job per cluster)."""

RUNBOOK_BASE_URL = "docs/runbooks/"
"""Where runbooks live relative to the repository; `cairn render --runbook-base-url` overrides."""

WARNING = "warning"
CRITICAL = "critical"


@dataclass(frozen=True)
class Alert:
    """One alerting rule. ``expr`` builds the PromQL for a `Timing` (production or shortened)."""

    name: str
    severity: str
    hold: str
    """How long the condition must hold (`for:`), at production timing."""
    expr: Callable[[Timing], str]
    summary: str
    description: str
    group: str = "etcd"

    def rule(self, timing: Timing, runbook_base_url: str) -> dict[str, object]:
        return {
            "alert": self.name,
            "expr": self.expr(timing),
            "for": timing.hold(self.hold),
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": f"{runbook_base_url}{self.name}.md",
            },
        }


def _s(name: str, extra: str = "") -> str:
    return series(name, SELECTOR, extra)


def _members_down(tm: Timing) -> str:
    # The two kinds of evidence get distinct labels, else `or` would drop the second whenever
    # the first exists (with the value 0).
    failures = f"rate({_s('etcd_network_peer_sent_failures_total')}[{tm.window('2m')}])"
    scrape = f"sum by (job) ({_s('up')} == bool 0)"
    peers = f"count by (job) (sum by (job, To) ({failures}) > {t.PEER_SEND_FAILURES_PER_S})"
    return (
        "max by (job) (\n"
        f'  label_replace({scrape}, "evidence", "scrape", "", "")\n'
        "or\n"
        f'  label_replace({peers}, "evidence", "peers", "", "")\n'
        ") > 0"
    )


def _insufficient_members(tm: Timing) -> str:
    up = _s("up")
    return f"sum by (job) ({up} == bool 1) < ((count by (job) ({up}) + 1) / 2)"


def _leader_changes(tm: Timing) -> str:
    changes = _s("etcd_server_leader_changes_seen_total")
    window = f"{tm.window(t.LEADER_CHANGES_WINDOW)}:{tm.window('1m')}"
    return f"increase((max by (job) ({changes}))[{window}]) >= {t.LEADER_CHANGES_WARNING}"


def _failed_grpc(percent: float) -> Callable[[Timing], str]:
    def expr(tm: Timing) -> str:
        codes = "|".join(t.FAILED_GRPC_CODES)
        keep = "job, instance, grpc_service, grpc_method"
        code_is_failure = 'grpc_code=~"' + codes + '"'
        failed = f"rate({_s('grpc_server_handled_total', code_is_failure)}[{tm.window('5m')}])"
        handled = f"rate({_s('grpc_server_handled_total')}[{tm.window('5m')}])"
        return f"100 * sum by ({keep}) ({failed})\n  / sum by ({keep}) ({handled})\n  > {percent:g}"

    return expr


def _grpc_slow(tm: Timing) -> str:
    quantile = quantile_over(
        0.99,
        "grpc_server_handling_seconds",
        f'{SELECTOR}, grpc_type="unary", grpc_method!="Defragment"',
        tm.window("5m"),
        by="grpc_service, grpc_method",
    )
    return f"{quantile}\n  > {t.GRPC_P99_CRITICAL_S:g}"


def _peer_rtt(tm: Timing) -> str:
    quantile = quantile_over(
        0.99, "etcd_network_peer_round_trip_time_seconds", SELECTOR, tm.window("5m"), "To"
    )
    return f"{quantile}\n  > {t.PEER_RTT_P99_WARNING_S:g}"


def _failed_proposals(tm: Timing) -> str:
    failed = _s("etcd_server_proposals_failed_total")
    return f"rate({failed}[{tm.window('15m')}]) > {t.FAILED_PROPOSALS_PER_S:g}"


def _disk_p99(histogram: str, limit: float) -> Callable[[Timing], str]:
    def expr(tm: Timing) -> str:
        return f"{quantile_over(0.99, histogram, SELECTOR, tm.window('5m'))}\n  > {limit:g}"

    return expr


def _quota_low(tm: Timing) -> str:
    size = f"last_over_time({_s('etcd_mvcc_db_total_size_in_bytes')}[{tm.window('5m')}])"
    quota = f"last_over_time({_s('etcd_server_quota_backend_bytes')}[{tm.window('5m')}])"
    return f"100 * {size} / ({quota} > 0) > {t.QUOTA_USED_CRITICAL_PERCENT:g}"


def _db_growth(tm: Timing) -> str:
    size = _s("etcd_mvcc_db_total_size_in_bytes")
    window = tm.window(t.DB_GROWTH_HORIZON)
    horizon = tm.seconds(t.DB_GROWTH_HORIZON)
    quota = _s("etcd_server_quota_backend_bytes")
    return f"predict_linear({size}[{window}], {horizon:g})\n  > ({quota} > 0)"


def _fragmentation(tm: Timing) -> str:
    in_use = _s("etcd_mvcc_db_total_size_in_use_in_bytes")
    total = _s("etcd_mvcc_db_total_size_in_bytes")
    w = tm.window("5m")
    return (
        f"last_over_time({in_use}[{w}]) / last_over_time({total}[{w}])"
        f" < {t.FRAGMENTATION_IN_USE_RATIO:g}\n"
        f"  and {in_use} > {t.FRAGMENTATION_MIN_IN_USE_BYTES}"
    )


def _alarm(alarm_type: str) -> Callable[[Timing], str]:
    def expr(tm: Timing) -> str:
        active = _s("cairn_server_alarm_active", f'alarm_type="{alarm_type}"')
        return f"max by (job, alarm_type) ({active}) > 0"

    return expr


def _cert_expiry(days: int) -> Callable[[Timing], str]:
    def expr(tm: Timing) -> str:
        expiry = _s("cairn_tls_certificate_expiry_timestamp_seconds")
        return f"({expiry} - time()) / {t.DAY_S} < {days}"

    return expr


def _not_applying(tm: Timing) -> str:
    w = tm.window(t.MEMBER_NOT_APPLYING_WINDOW)
    applied = _s("cairn_server_applied_index")
    committed = _s("cairn_server_committed_index")
    return f"delta({applied}[{w}]) <= 0\n  and delta({committed}[{w}]) > 0"


def _backup_age(tm: Timing) -> str:
    # node_exporter scrapes the textfile; its job is not a cairn job, so select by metric only.
    stamp = series("cairn_backup_last_success_timestamp_seconds")
    return f"(time() - {stamp}) / 3600 > {t.BACKUP_MAX_AGE_HOURS}"


_CLUSTER = "{{ $labels.job }}"
_MEMBER = "{{ $labels.instance }}"

ALERTS: tuple[Alert, ...] = (
    Alert(
        "etcdMembersDown",
        CRITICAL,
        "10m",
        _members_down,
        "cairn cluster members are down.",
        f'cluster "{_CLUSTER}": {{{{ $value }}}} member(s) down (not scraped, or peers cannot '
        "send to them). One more failure may cost quorum.",
    ),
    Alert(
        "etcdInsufficientMembers",
        CRITICAL,
        "3m",
        _insufficient_members,
        "cairn cluster has lost quorum.",
        f'cluster "{_CLUSTER}": only {{{{ $value }}}} member(s) up, fewer than a majority; the '
        "cluster refuses writes and linearizable reads.",
    ),
    Alert(
        "etcdNoLeader",
        CRITICAL,
        "1m",
        lambda tm: f"{_s('etcd_server_has_leader')} == 0",
        "cairn member has no leader.",
        f'cluster "{_CLUSTER}": member {_MEMBER} has no leader; it cannot serve writes or '
        "linearizable reads.",
    ),
    Alert(
        "etcdHighNumberOfLeaderChanges",
        WARNING,
        "5m",
        _leader_changes,
        "cairn cluster has a high number of leader changes.",
        f'cluster "{_CLUSTER}": {{{{ $value | printf "%.0f" }}}} leader changes within the last '
        f"{t.LEADER_CHANGES_WINDOW}. Frequent elections point at overloaded members, slow "
        "disks or a flaky network.",
    ),
    Alert(
        "etcdHighNumberOfFailedGRPCRequests",
        WARNING,
        "10m",
        _failed_grpc(t.FAILED_GRPC_WARNING_PERCENT),
        "cairn cluster has a high number of failed gRPC requests.",
        f'cluster "{_CLUSTER}": {{{{ $value | printf "%.2f" }}}}% of {{{{ $labels.grpc_method }}}} '
        f"requests failed on member {_MEMBER}.",
    ),
    Alert(
        "etcdHighNumberOfFailedGRPCRequests",
        CRITICAL,
        "5m",
        _failed_grpc(t.FAILED_GRPC_CRITICAL_PERCENT),
        "cairn cluster has a high number of failed gRPC requests.",
        f'cluster "{_CLUSTER}": {{{{ $value | printf "%.2f" }}}}% of {{{{ $labels.grpc_method }}}} '
        f"requests failed on member {_MEMBER}.",
    ),
    Alert(
        "etcdGRPCRequestsSlow",
        CRITICAL,
        "10m",
        _grpc_slow,
        "cairn gRPC requests are slow.",
        f'cluster "{_CLUSTER}": p99 of {{{{ $labels.grpc_method }}}} requests is '
        f"{{{{ $value | humanizeDuration }}}} on member {_MEMBER}.",
    ),
    Alert(
        "etcdMemberCommunicationSlow",
        WARNING,
        "10m",
        _peer_rtt,
        "cairn member communication is slow.",
        f'cluster "{_CLUSTER}": p99 round trip from {_MEMBER} to peer {{{{ $labels.To }}}} is '
        "{{ $value | humanizeDuration }}.",
    ),
    Alert(
        "etcdHighNumberOfFailedProposals",
        WARNING,
        "15m",
        _failed_proposals,
        "cairn cluster has a high number of proposal failures.",
        f'cluster "{_CLUSTER}": {{{{ $value | printf "%.2f" }}}} proposal failures per second on '
        f"member {_MEMBER}.",
    ),
    Alert(
        "etcdHighFsyncDurations",
        WARNING,
        "10m",
        _disk_p99("etcd_disk_wal_fsync_duration_seconds", t.WAL_FSYNC_P99_WARNING_S),
        "cairn WAL fsync p99 is too high.",
        f'cluster "{_CLUSTER}": p99 WAL fsync takes {{{{ $value | humanizeDuration }}}} on '
        f"member {_MEMBER}.",
    ),
    Alert(
        "etcdHighFsyncDurations",
        CRITICAL,
        "10m",
        _disk_p99("etcd_disk_wal_fsync_duration_seconds", t.WAL_FSYNC_P99_CRITICAL_S),
        "cairn WAL fsync p99 is too high.",
        f'cluster "{_CLUSTER}": p99 WAL fsync takes {{{{ $value | humanizeDuration }}}} on '
        f"member {_MEMBER}.",
    ),
    Alert(
        "etcdHighCommitDurations",
        WARNING,
        "10m",
        _disk_p99("etcd_disk_backend_commit_duration_seconds", t.BACKEND_COMMIT_P99_WARNING_S),
        "cairn backend commit p99 is too high.",
        f'cluster "{_CLUSTER}": p99 backend commit takes {{{{ $value | humanizeDuration }}}} on '
        f"member {_MEMBER}.",
    ),
    Alert(
        "etcdDatabaseQuotaLowSpace",
        CRITICAL,
        "10m",
        _quota_low,
        "cairn database is nearly full.",
        f'cluster "{_CLUSTER}": the database on member {_MEMBER} uses '
        '{{ $value | printf "%.1f" }}% of --quota-backend-bytes; writes stop (NOSPACE) at 100%.',
    ),
    Alert(
        "etcdExcessiveDatabaseGrowth",
        WARNING,
        "10m",
        _db_growth,
        "cairn database is growing very fast.",
        f'cluster "{_CLUSTER}": at the growth of the last {t.DB_GROWTH_HORIZON}, the database on '
        f"member {_MEMBER} reaches its quota within {t.DB_GROWTH_HORIZON} "
        "(predicted {{ $value | humanize1024 }}B).",
    ),
    Alert(
        "etcdDatabaseHighFragmentationRatio",
        WARNING,
        "10m",
        _fragmentation,
        "cairn database is mostly unused space.",
        f'cluster "{_CLUSTER}": only {{{{ $value | humanizePercentage }}}} of the database on '
        f"member {_MEMBER} is in use; defragment it to give the space back.",
    ),
    Alert(
        "cairnNoSpaceAlarm",
        CRITICAL,
        "1m",
        _alarm("NOSPACE"),
        "cairn NOSPACE alarm is active: the cluster refuses writes.",
        f'cluster "{_CLUSTER}": the NOSPACE alarm is raised; puts, txns with puts and lease '
        "grants fail with 'database space exceeded' until compaction, defragmentation and "
        "`etcdctl alarm disarm`.",
        group="cairn",
    ),
    Alert(
        "cairnCorruptAlarm",
        CRITICAL,
        "1m",
        _alarm("CORRUPT"),
        "cairn CORRUPT alarm is active: members disagree about their data.",
        f'cluster "{_CLUSTER}": the CORRUPT alarm is raised; a member\'s state differs from the '
        "others at the same revision and the cluster refuses writes.",
        group="cairn",
    ),
    Alert(
        "cairnCertificateExpiring",
        WARNING,
        "1h",
        _cert_expiry(t.CERT_EXPIRY_WARNING_DAYS),
        f"cairn TLS certificate expires in less than {t.CERT_EXPIRY_WARNING_DAYS} days.",
        f"{{{{ $labels.file }}}} on member {_MEMBER} expires in "
        '{{ $value | printf "%.1f" }} days.',
        group="cairn",
    ),
    Alert(
        "cairnCertificateExpiring",
        CRITICAL,
        "10m",
        _cert_expiry(t.CERT_EXPIRY_CRITICAL_DAYS),
        f"cairn TLS certificate expires in less than {t.CERT_EXPIRY_CRITICAL_DAYS} days.",
        f"{{{{ $labels.file }}}} on member {_MEMBER} expires in "
        '{{ $value | printf "%.1f" }} days; clients or peers will be refused then.',
        group="cairn",
    ),
    Alert(
        "cairnMemberNotApplying",
        CRITICAL,
        "5m",
        _not_applying,
        "cairn member is not applying committed entries.",
        f'cluster "{_CLUSTER}": member {_MEMBER} has not applied an entry for '
        f"{t.MEMBER_NOT_APPLYING_WINDOW} while its commit index grows; it serves stale reads "
        "and its waiting requests time out.",
        group="cairn",
    ),
    Alert(
        "cairnBackupTooOld",
        WARNING,
        "10m",
        _backup_age,
        "cairn backup is older than the schedule allows.",
        'the last good backup of cluster "{{ $labels.cluster }}" is '
        '{{ $value | printf "%.1f" }} hours old (the daily schedule allows '
        f"{t.BACKUP_MAX_AGE_HOURS}).",
        group="cairn",
    ),
)

GROUPS = ("etcd", "cairn")


def rule_groups(
    timing: Timing = PRODUCTION, runbook_base_url: str = RUNBOOK_BASE_URL
) -> dict[str, object]:
    """The rule file: one group per concern, each rule rendered at ``timing``."""
    return {
        "groups": [
            {
                "name": group,
                "rules": [a.rule(timing, runbook_base_url) for a in ALERTS if a.group == group],
            }
            for group in GROUPS
        ]
    }


def names() -> list[str]:
    """Each alert name once, in definition order."""
    return list(dict.fromkeys(a.name for a in ALERTS))
