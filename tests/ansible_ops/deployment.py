"""One cluster deployed by the playbooks on nspawn hosts, shared by the backup/monitoring tests.

Three members in three zones and a monitoring host on a bridge of their own (10.232.0.0/24,
so this fleet can run beside the other Ansible suites' 10.231.0.0/24), deployed with
playbooks/site.yml and playbooks/monitoring.yml exactly as a user would, except for what the
test hosts cannot do: they have no package mirror (Debian packages come from the control node,
`cairn_debs_source: control_node`), no Grafana repository (`cairn_monitoring_grafana: false`)
and a shared disk slower than etcd's fdatasync guidance (the disk check only warns).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.hosts import fleet as fleet_module

REPO = Path(__file__).resolve().parents[2]
SUBNET = "10.232.0.0/24"
MEMBERS = {"m1": "zone-a", "m2": "zone-b", "m3": "zone-c"}
MONITORING = "mon"
DEB_CACHE = Path(os.environ.get("CAIRN_NSPAWN_CACHE", "/var/cache/cairn-nspawn")) / "debs"
"""Downloaded .debs are kept between runs (one directory per package set)."""
PLAYBOOK_TIMEOUT_S = 1200
T = TypeVar("T")


def tool(name: str) -> str:
    """An Ansible command from this interpreter's environment (the dev extra installs it)."""
    return str(Path(sys.executable).parent / name)


@dataclass
class Deployment:
    fleet: fleet_module.Fleet
    inventory: Path

    @property
    def inventory_dir(self) -> Path:
        return self.inventory.parent

    def address(self, host: str) -> str:
        return self.fleet.host(host).address

    def playbook(self, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """Run playbooks/<name> against the fleet; the output is kept for the failure message."""
        return subprocess.run(
            [
                tool("ansible-playbook"),
                "-i",
                str(self.inventory),
                str(REPO / "playbooks" / name),
                *extra,
            ],
            cwd=REPO,
            env=ansible_environment(),
            capture_output=True,
            text=True,
            timeout=PLAYBOOK_TIMEOUT_S,
            check=False,
        )

    def etcdctl(self, *args: str, endpoint: str = "m1") -> subprocess.CompletedProcess[str]:
        """The operator's etcdctl with the credentials site.yml left in pki/."""
        pki = self.inventory_dir / "pki"
        return subprocess.run(
            [
                "etcdctl",
                f"--cacert={pki / 'client-ca.crt'}",
                f"--cert={pki / 'admin.crt'}",
                f"--key={pki / 'admin.key'}",
                f"--endpoints=https://{self.address(endpoint)}:2379",
                "--command-timeout=10s",
                *args,
            ],
            env={**os.environ, "ETCDCTL_API": "3"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def prometheus(self, path: str) -> Any:
        """GET from Prometheus's HTTP API on the monitoring host."""
        url = f"http://{self.address(MONITORING)}:9090{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)

    def wait_for(
        self, condition: Callable[[], T], timeout: float = 90.0, interval: float = 2.0
    ) -> T:
        """Polls ``condition()`` until it returns something truthy; returns it (or the last)."""
        deadline = time.monotonic() + timeout
        result = condition()
        while not result and time.monotonic() < deadline:
            time.sleep(interval)
            result = condition()
        return result


def ansible_environment() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }


def write_inventory(fleet: fleet_module.Fleet, directory: Path) -> Path:
    monitoring_address = fleet.host(MONITORING).address
    inventory = {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": fleet.ssh_key,
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                "cairn_debs_source": "control_node",
                "cairn_debs_cache": str(DEB_CACHE),
                "cairn_monitoring_grafana": False,
                "cairn_monitoring_scrape_interval": "5s",
                "cairn_monitoring_evaluation_interval": "5s",
                "cairn_server_disk_check_fail": False,
            },
            "children": {
                "cairn": {
                    "hosts": {
                        name: {"ansible_host": fleet.host(name).address, "cairn_zone": zone}
                        for name, zone in MEMBERS.items()
                    },
                },
                "monitoring": {"hosts": {MONITORING: {"ansible_host": monitoring_address}}},
            },
        }
    }
    path = directory / "inventory.yml"
    path.write_text(json.dumps(inventory, indent=2))  # JSON is YAML
    return path


def site_imports_monitoring() -> bool:
    return "monitoring.yml" in (REPO / "playbooks" / "site.yml").read_text()
