"""`cairn dev`'s monitoring: a Prometheus scraping the dev members with cairn's alert rules and an
Alertmanager with the example routing, when their binaries (Debian `prometheus`,
`prometheus-alertmanager`) are installed.

Both keep their data under <dir>/monitoring/ and stop with the cluster. The rules are the
production ones (`cairn render`); the Alertmanager has the example's routes and inhibitions but
receivers without integrations, so firing alerts show in its web UI instead of being posted to
the example's placeholder URLs.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"
DEFAULT_PROMETHEUS_PORT = 9390
DEFAULT_ALERTMANAGER_PORT = 9393
"""Not 9090/9093: Debian's packages start their own services there on a systemd host."""

JOB = "cairn"


@dataclass
class Monitoring:
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    """What to tell the user: URLs, or why nothing was started."""

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _alertmanager_config() -> dict[str, object]:
    from cairn.observe import alertmanager

    config = alertmanager.config()
    config["receivers"] = [{"name": r["name"]} for r in config["receivers"]]  # type: ignore[union-attr]
    return config


def _prometheus_config(rules: Path, targets: list[str], alertmanager_address: str) -> dict:
    return {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_address]}]}]},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}],
    }


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def start(
    base: Path, metrics_targets: list[str], prometheus_port: int, alertmanager_port: int
) -> Monitoring:
    """Start Alertmanager, then Prometheus, if installed; never fails the dev cluster."""
    from cairn.observe import render  # grafanalib: only when a cluster actually starts

    monitoring = Monitoring()
    missing = [b for b in (PROMETHEUS, ALERTMANAGER) if shutil.which(b) is None]
    if missing:
        monitoring.lines.append(
            f"  monitoring: not started ({', '.join(missing)} not installed; Debian packages "
            "prometheus, prometheus-alertmanager)"
        )
        return monitoring
    root = base.resolve() / "monitoring"
    root.mkdir(parents=True, exist_ok=True)
    rules = root / "cairn.rules.yml"
    rules.write_text(render.rules_text(), encoding="utf-8")
    am_config = root / "alertmanager.yml"
    am_config.write_text(render.to_yaml(_alertmanager_config()), encoding="utf-8")
    am_address = f"127.0.0.1:{alertmanager_port}"
    prom_config = root / "prometheus.yml"
    prom_config.write_text(
        render.to_yaml(_prometheus_config(rules, metrics_targets, am_address)), encoding="utf-8"
    )
    prom_address = f"127.0.0.1:{prometheus_port}"
    log = open(root / "monitoring.log", "ab")  # noqa: SIM115 - owned by the children
    commands = {
        "Alertmanager": (
            [
                ALERTMANAGER,
                f"--config.file={am_config}",
                f"--storage.path={root / 'alertmanager-data'}",
                f"--web.listen-address={am_address}",
                "--cluster.listen-address=",
            ],
            f"http://{am_address}",
        ),
        "Prometheus": (
            [
                PROMETHEUS,
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={root / 'prometheus-data'}",
                f"--web.listen-address={prom_address}",
            ],
            f"http://{prom_address}",
        ),
    }
    for name, (argv, url) in commands.items():
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        monitoring.processes.append(process)
        if _wait_ready(f"{url}/-/ready", process):
            monitoring.lines.append(f"  {name}: {url}  (log {root / 'monitoring.log'})")
        else:
            monitoring.lines.append(f"  {name}: failed to start, see {root / 'monitoring.log'}")
    monitoring.lines.append(
        "  dashboards: import dashboards/*.json into Grafana with this Prometheus as data source"
    )
    return monitoring
