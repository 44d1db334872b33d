"""Backups and monitoring deployed by the playbooks on real (nspawn) hosts.

One shared deployment (conftest.py): site.yml and monitoring.yml on three members in three
zones and a monitoring host. The restore test changes the cluster, so it runs last.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from tests.ansible_ops.deployment import MEMBERS, REPO, Deployment, ansible_environment, tool

# The first test that asks for the deployment also waits for site.yml and monitoring.yml.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

OUR_PLAYBOOKS = ("monitoring.yml", "backup.yml", "restore.yml")
OUR_ROLES = ("cairn_backup", "cairn_monitoring", "cairn_debs")
CAIRN = "/opt/cairn/current/venv/bin/cairn"


def _recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines as {host: {ok: n, changed: n, ...}}."""
    recap = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        recap[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return recap


def test_roles_and_playbooks_pass_ansible_lint_production_profile() -> None:
    result = subprocess.run(
        [tool("ansible-lint"), "--profile", "production", "--nocolor",
         *(f"roles/{role}" for role in OUR_ROLES), *(f"playbooks/{p}" for p in OUR_PLAYBOOKS)],
        cwd=REPO, env=ansible_environment(), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize("playbook", OUR_PLAYBOOKS)
def test_playbook_passes_syntax_check(playbook: str) -> None:
    result = subprocess.run(
        [tool("ansible-playbook"), "--syntax-check", "-i", "inventory.example", f"playbooks/{playbook}"],
        cwd=REPO, env=ansible_environment(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_member_over_tls_with_its_client_certificate(
    deployment: Deployment,
) -> None:
    def member_targets() -> list[dict]:
        targets = deployment.prometheus("/api/v1/targets")["data"]["activeTargets"]
        ours = [t for t in targets if t["labels"]["job"] == "cairn-cairn"]
        return ours if len(ours) == len(MEMBERS) and all(t["health"] == "up" for t in ours) else []

    targets = deployment.wait_for(member_targets)
    assert targets, deployment.prometheus("/api/v1/targets")["data"]["activeTargets"]
    assert sorted(t["scrapeUrl"] for t in targets) == sorted(
        f"https://{deployment.address(m)}:2381/metrics" for m in MEMBERS
    )
    assert {t["labels"]["member"]: t["labels"]["zone"] for t in targets} == MEMBERS


def test_prometheus_loaded_every_cairn_alerting_rule(deployment: Deployment) -> None:
    shipped = {
        rule["alert"]
        for group in yaml.safe_load((REPO / "alerts" / "cairn.rules.yml").read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    groups = deployment.prometheus("/api/v1/rules")["data"]["groups"]
    loaded = {
        rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"
    }
    assert shipped and loaded == shipped


def test_a_second_monitoring_run_changes_nothing(deployment: Deployment) -> None:
    result = deployment.playbook("monitoring.yml")
    assert result.returncode == 0, result.stdout[-4000:]
    recap = _recap(result.stdout)
    assert set(recap) == {*MEMBERS, "mon"}
    assert {host: counts["changed"] for host, counts in recap.items()} == dict.fromkeys(recap, 0)


def test_the_backup_service_saves_a_snapshot_cairn_verifies_and_publishes_its_time(
    deployment: Deployment,
) -> None:
    started = time.time()
    run = deployment.fleet.ssh("m2", "systemctl start cairn-backup.service", timeout=120)
    assert run.returncode == 0, (
        run.stderr + deployment.fleet.ssh("m2", "journalctl -u cairn-backup").stdout
    )
    newest = deployment.fleet.ssh(
        "m2", "ls -1 /var/backups/cairn/cairn-*.db | tail -1"
    ).stdout.strip()
    assert re.fullmatch(r"/var/backups/cairn/cairn-cairn-m2-\d{8}T\d{6}Z\.db", newest)
    status = deployment.fleet.ssh("m2", f"{CAIRN} snapshot status -w json {newest}")
    assert status.returncode == 0, status.stderr
    assert '"revision"' in status.stdout
    textfile = deployment.fleet.ssh(
        "m2", "cat /var/lib/prometheus/node-exporter/cairn_backup.prom"
    ).stdout
    stamp = re.search(
        r'^cairn_backup_last_success_timestamp_seconds\{cluster="cairn"\} (\S+)$', textfile, re.M
    )
    assert stamp and started - 1 <= float(stamp.group(1)) <= time.time() + 1

    def scraped() -> list[dict]:
        query = (
            "/api/v1/query?query=cairn_backup_last_success_timestamp_seconds%7Bmember%3D%22m2%22%7D"
        )
        return deployment.prometheus(query)["data"]["result"]

    series = deployment.wait_for(scraped)
    assert series and float(series[0]["value"][1]) == pytest.approx(float(stamp.group(1)), abs=0.01)
    assert series[0]["metric"]["cluster"] == "cairn"


def test_retention_keeps_only_the_newest_snapshots(deployment: Deployment) -> None:
    setup = deployment.fleet.ssh(
        "m3",
        "for d in 20200101 20200102 20200103 20200104 20200105 20200106 20200107 20200108; do"
        " touch /var/backups/cairn/cairn-cairn-m3-${d}T000000Z.db; done;"
        " systemctl start cairn-backup.service",
        timeout=120,
    )
    assert setup.returncode == 0, setup.stderr
    left = deployment.fleet.ssh("m3", "ls -1 /var/backups/cairn/ | grep '^cairn-'").stdout.split()
    assert len(left) == 7  # cairn_backup_keep
    assert "cairn-cairn-m3-20200101T000000Z.db" not in left
    assert "cairn-cairn-m3-20200102T000000Z.db" not in left
    assert any(not name.startswith("cairn-cairn-m3-2020") for name in left)


def test_backup_playbook_fetches_a_snapshot_that_restore_playbook_brings_back(
    deployment: Deployment,
) -> None:
    assert deployment.etcdctl("put", "written-before-backup", "kept").returncode == 0
    members_before = deployment.etcdctl("member", "list").stdout

    backup = deployment.playbook("backup.yml")
    assert backup.returncode == 0, backup.stdout[-4000:]
    fetched = sorted((deployment.inventory_dir / "backups").glob("cairn-cairn-*.db"))
    assert len(fetched) == 1 and fetched[0].stat().st_size > 0
    assert fetched[0].stat().st_mode & 0o077 == 0

    assert deployment.etcdctl("put", "written-after-backup", "gone").returncode == 0
    restore = deployment.playbook("restore.yml", "-e", f"snapshot={fetched[0]}")
    assert restore.returncode == 0, restore.stdout[-4000:]

    for member in MEMBERS:
        keys = deployment.etcdctl("get", "--prefix", "written-", "--keys-only", endpoint=member)
        assert keys.returncode == 0, keys.stderr
        assert keys.stdout.split() == ["written-before-backup"]
    assert (
        deployment.etcdctl("get", "written-before-backup", "--print-value-only").stdout.strip()
        == "kept"
    )
    health = deployment.etcdctl("endpoint", "health", "--cluster")
    # etcdctl 3.4 reports endpoint health on stderr.
    assert health.returncode == 0, health.stderr
    assert (health.stdout + health.stderr).count("is healthy") == len(MEMBERS)
    # A new cluster: the same names and URLs, new member IDs.
    members_after = deployment.etcdctl("member", "list").stdout
    assert _names(members_after) == _names(members_before) == set(MEMBERS)
    assert _ids(members_after).isdisjoint(_ids(members_before))


def test_restore_refuses_a_missing_snapshot_file(deployment: Deployment, tmp_path: Path) -> None:
    result = deployment.playbook("restore.yml", "-e", f"snapshot={tmp_path / 'nope.db'}")
    assert result.returncode != 0
    assert "Give the snapshot on the control node" in result.stdout


def _names(member_list: str) -> set[str]:
    return {line.split(", ")[2] for line in member_list.splitlines() if line}


def _ids(member_list: str) -> set[str]:
    return {line.split(", ")[0] for line in member_list.splitlines() if line}
