"""`cairn dev` (`make cluster`) also starts Prometheus, with cairn's alert rules, and
Alertmanager when they are installed, prints their URLs, and stops them with the cluster."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
from tests.support.dev_cluster import free_base_port, running_dev
from tests.support.monitoring import missing_binaries
from tests.support.servers import free_port

from cairn.observe import alerts

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(missing_binaries()), reason="needs Debian prometheus and prometheus-alertmanager"
    ),
]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_dev_starts_prometheus_scraping_the_members_and_alertmanager(tmp_path: Path) -> None:
    port, prom_port, am_port = free_base_port(), free_port(), free_port()
    flags = ["--prometheus-port", str(prom_port), "--alertmanager-port", str(am_port)]
    with running_dev(tmp_path / "c", port, *flags) as banner:
        assert re.search(rf"Prometheus: http://127\.0\.0\.1:{prom_port}\b", banner), banner
        assert re.search(rf"Alertmanager: http://127\.0\.0\.1:{am_port}\b", banner), banner
        prometheus = f"http://127.0.0.1:{prom_port}"
        groups = _get(f"{prometheus}/api/v1/rules")["data"]["groups"]
        loaded = {rule["name"] for group in groups for rule in group["rules"]}
        assert loaded == set(alerts.names())
        deadline = time.monotonic() + 30
        up: list = []
        while not up and time.monotonic() < deadline:
            up = _get(f"{prometheus}/api/v1/query?query=up%7Bjob%3D%22cairn%22%7D%3D%3D1")["data"][
                "result"
            ]
            time.sleep(0.5)
        assert [s["metric"]["instance"] for s in up] == [f"127.0.0.1:{port + 2}"]
        targets = _get(f"{prometheus}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
        assert [t["url"] for t in targets] == [f"http://127.0.0.1:{am_port}/api/v2/alerts"]
    for stopped_port in (prom_port, am_port):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{stopped_port}/-/ready", timeout=2)
