"""The alert rules: promtool accepts them, its unit tests cover every alert firing and quiet,
every alert is documented, and the Alertmanager example routes and validates."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cairn.observe import alertmanager, alerts, render

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / render.RULES_FILE
AM_CONFIG = REPO / render.ALERTMANAGER_FILE
UNIT_TESTS = sorted((REPO / "alerts" / "tests").glob("*.yml"))

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="needs promtool (Debian package prometheus)"
)
needs_amtool = pytest.mark.skipif(
    shutil.which("amtool") is None, reason="needs amtool (Debian prometheus-alertmanager)"
)


def _rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


@needs_promtool
def test_promtool_accepts_the_rule_file() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts.ALERTS)} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", *map(str, UNIT_TESTS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _unit_test_cases() -> list[dict]:
    cases = []
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


def test_every_alert_and_severity_has_a_firing_unit_test() -> None:
    fired = {
        (case["alertname"], expected["exp_labels"]["severity"])
        for case in _unit_test_cases()
        for expected in case.get("exp_alerts", [])
    }
    assert {(a.name, a.severity) for a in alerts.ALERTS} <= fired


def test_every_alert_has_a_quiet_unit_test() -> None:
    quiet = {case["alertname"] for case in _unit_test_cases() if not case.get("exp_alerts")}
    assert set(alerts.names()) <= quiet


def test_every_rule_has_severity_summary_description_and_runbook() -> None:
    for rule in _rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], rule["alert"]
        assert "{{ $" in notes["description"], f"{rule['alert']}: description quotes no value"
        assert notes["runbook_url"] == f"docs/runbooks/{rule['alert']}.md"


def test_every_alert_has_a_runbook_saying_what_to_check_and_do() -> None:
    for name in alerts.names():
        runbook = (REPO / "docs" / "runbooks" / f"{name}.md").read_text()
        assert runbook.startswith(f"# {name}"), name
        assert "**Check.**" in runbook and "**Act.**" in runbook, name


def test_the_etcd_mixin_alerts_are_all_there() -> None:
    assert {
        "etcdMembersDown",
        "etcdInsufficientMembers",
        "etcdNoLeader",
        "etcdHighNumberOfLeaderChanges",
        "etcdHighNumberOfFailedGRPCRequests",
        "etcdGRPCRequestsSlow",
        "etcdMemberCommunicationSlow",
        "etcdHighNumberOfFailedProposals",
        "etcdHighFsyncDurations",
        "etcdHighCommitDurations",
        "etcdDatabaseQuotaLowSpace",
        "etcdExcessiveDatabaseGrowth",
        "etcdDatabaseHighFragmentationRatio",
    } <= set(alerts.names())


@needs_amtool
def test_amtool_accepts_the_alertmanager_example() -> None:
    result = subprocess.run(
        ["amtool", "check-config", str(AM_CONFIG)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_amtool
@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=etcdNoLeader", "severity=critical"], alertmanager.PAGER),
        (["alertname=etcdHighFsyncDurations", "severity=warning"], alertmanager.TICKETS),
        (["alertname=cairnBackupTooOld", "severity=warning"], alertmanager.TICKETS),
    ],
)
def test_critical_alerts_page_and_warnings_make_tickets(labels: list[str], receiver: str) -> None:
    result = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={AM_CONFIG}", *labels],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver


def test_inhibitions_silence_symptoms_of_a_lost_leader() -> None:
    rules = alertmanager.config()["inhibit_rules"]
    no_leader = next(r for r in rules if r["source_matchers"] == ['alertname="etcdNoLeader"'])
    silenced = no_leader["target_matchers"][0]
    assert "etcdGRPCRequestsSlow" in silenced and "etcdHighNumberOfFailedGRPCRequests" in silenced
    assert no_leader["equal"] == ["job"]


def test_an_inhibition_naming_an_unknown_alert_fails_the_render(monkeypatch) -> None:
    monkeypatch.setattr(
        alertmanager, "INHIBITIONS", (("etcdNoLeader", ("etcdRenamedAway",), ("job",)),)
    )
    with pytest.raises(KeyError, match="etcdRenamedAway"):
        alertmanager.config()
