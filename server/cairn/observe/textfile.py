"""Metrics that no cairn member exports: jobs on the member's host write them for node_exporter.

The scheduled backup runs outside the server (a systemd timer calling `etcdctl snapshot save`),
so the server cannot know when it last succeeded. The job writes
``cairn_backup_last_success_timestamp_seconds`` into node_exporter's textfile collector
directory after each successful, verified snapshot; Prometheus scrapes it with the host's
node_exporter and `cairnBackupTooOld` alerts on its age. It is described with the same
`MetricSpec` as the catalog's entries so dashboards and alerts name it the same checked way.
"""

from __future__ import annotations

from cairn.observe.catalog import MetricSpec, MetricType, Origin

BACKUP_TIMESTAMP = MetricSpec(
    "cairn_backup_last_success_timestamp_seconds",
    MetricType.GAUGE,
    "When the last backup snapshot of this cluster was saved and verified (Unix seconds).",
    ("cluster",),
    origin=Origin.CAIRN,
)

TEXTFILE_METRICS: tuple[MetricSpec, ...] = (BACKUP_TIMESTAMP,)


def backup_timestamp_file(cluster: str, finished_at: float) -> str:
    """What the backup job writes to ``<textfile dir>/cairn_backup.prom`` after a good backup."""
    spec = BACKUP_TIMESTAMP
    return (
        f"# HELP {spec.name} {spec.help}\n"
        f"# TYPE {spec.name} {spec.type}\n"
        f'{spec.name}{{cluster="{cluster}"}} {finished_at:.3f}\n'
    )
