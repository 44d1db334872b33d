"""`cairn dev` gives every member a metrics URL and prints it; the URL answers."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from tests.cluster.processes import free_port
from tests.observe.exposition import fetch
from tests.support.dev_cluster import running_dev

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def test_dev_prints_a_metrics_url_per_member_that_serves_health_and_metrics(
    tmp_path: Path,
) -> None:
    port = free_port()
    with running_dev(tmp_path / "c", port) as banner:
        urls = re.findall(r"metrics (http://\S+)/metrics", banner)
        assert urls == [f"http://127.0.0.1:{port + 2}"], banner
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = fetch(f"{urls[0]}/health", timeout=2)
            except OSError:
                status, body = 0, ""
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (status, body) == (200, '{"health":"true","reason":""}')
        status, body = fetch(f"{urls[0]}/metrics")
        assert status == 200
        assert "\netcd_server_has_leader 1.0\n" in body
