"""site.yml refuses, before touching any host, a layout that cannot survive losing one zone.

The inventories name addresses on the test subnet that nothing listens on: the preflight
play runs on the control node only, so a refused layout never opens a connection.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.deploy.ansible_run import PlaybookRun, playbook

pytestmark = pytest.mark.slow


def inventory(tmp_path: Path, zones: list[str | None], extra_vars: str = "") -> Path:
    hosts = []
    for number, zone in enumerate(zones, start=1):
        line = f"        m{number}: {{ansible_host: 10.231.0.{200 + number}"
        line += f", cairn_zone: {zone}}}" if zone else "}"
        hosts.append(line)
    path = tmp_path / "inventory"
    path.write_text(
        "all:\n  children:\n    cairn:\n      hosts:\n" + "\n".join(hosts) + "\n" + extra_vars
    )
    return path


def site(path: Path) -> PlaybookRun:
    return playbook(path, "site.yml", timeout=300)


def refused(run: PlaybookRun, message: str) -> None:
    assert run.returncode != 0
    assert message in run.output, run.output[-3000:]
    assert "TASK [Gathering Facts]" not in run.output  # no host was contacted


def test_a_zone_holding_a_quorum_of_three_is_refused(tmp_path: Path) -> None:
    run = site(inventory(tmp_path, ["a", "a", "b"]))
    refused(run, "Zone a holds 2 of 3 members (m1, m2), a quorum of 2")


def test_a_zone_holding_a_quorum_of_five_is_refused(tmp_path: Path) -> None:
    run = site(inventory(tmp_path, ["a", "a", "a", "b", "c"]))
    refused(run, "Zone a holds 3 of 5 members (m1, m2, m3), a quorum of 3")


def test_an_even_member_count_is_refused(tmp_path: Path) -> None:
    run = site(inventory(tmp_path, ["a", "b", "c", "d"]))
    refused(run, "cairn needs an odd number of members; the group 'cairn' has 4")


def test_fewer_than_three_members_are_refused_outside_development(tmp_path: Path) -> None:
    run = site(inventory(tmp_path, ["a"]))
    refused(run, "cairn needs at least 3 members to survive the loss of one")


def test_a_member_without_a_zone_is_refused(tmp_path: Path) -> None:
    run = site(inventory(tmp_path, ["a", "b", None]))
    refused(run, "Every member needs cairn_zone (its availability zone); missing on: m3")


def test_a_layout_spread_over_zones_passes_the_preflight(tmp_path: Path) -> None:
    path = inventory(tmp_path, ["a", "a", "b", "b", "c"])
    run = playbook(path, "preflight.yml", timeout=300)
    assert run.returncode == 0, run.output[-3000:]


def test_the_dev_flag_allows_a_single_member(tmp_path: Path) -> None:
    path = inventory(tmp_path, ["a"], extra_vars="      vars:\n        cairn_dev: true\n")
    run = playbook(path, "preflight.yml", timeout=300)
    assert run.returncode == 0, run.output[-3000:]
