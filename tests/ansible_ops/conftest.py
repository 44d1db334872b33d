"""The shared deployment: booted, deployed and torn down once per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from tests.ansible_ops.deployment import (
    MEMBERS,
    MONITORING,
    SUBNET,
    Deployment,
    site_imports_monitoring,
    tool,
    write_inventory,
)
from tests.hosts import fleet as fleet_module


def _missing_tools() -> list[str]:
    needed = [
        "systemd-nspawn",
        "debootstrap",
        "nft",
        "ssh",
        "etcdctl",
        "apt-get",
        "dpkg-scanpackages",
    ]
    missing = [name for name in needed if shutil.which(name) is None]
    if not os.path.exists(tool("ansible-playbook")):
        missing.append("ansible-playbook")
    return missing


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if os.geteuid() != 0:
        pytest.skip("nspawn test hosts need root")
    missing = _missing_tools()
    if missing:
        pytest.skip(f"missing {', '.join(missing)}")
    fleet = fleet_module.create(
        [*MEMBERS, MONITORING], subnet=SUBNET, tag=f"ops{os.getpid() % 10000}"
    )
    try:
        deployed = Deployment(fleet, write_inventory(fleet, tmp_path_factory.mktemp("ops")))
        playbooks = ["site.yml"] if site_imports_monitoring() else ["site.yml", "monitoring.yml"]
        for playbook in playbooks:
            result = deployed.playbook(playbook)
            assert result.returncode == 0, f"{playbook} failed:\n{result.stdout[-6000:]}"
        yield deployed
    finally:
        fleet_module.teardown(fleet)
