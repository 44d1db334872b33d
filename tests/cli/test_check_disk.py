"""`cairn check disk`: fdatasync latency in the data dir, refused above a threshold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cairn.cli.check_disk import Latencies


def check_disk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn", "check", "disk", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_p99_is_the_nearest_rank_sample() -> None:
    latencies = Latencies([i / 1000 for i in range(1, 101)])  # 1 ms .. 100 ms
    assert latencies.p99_ms == 99.0
    assert latencies.p50_ms == 50.0
    assert latencies.max_ms == 100.0


def test_a_disk_within_the_threshold_passes_and_reports_percentiles(tmp_path: Path) -> None:
    result = check_disk("--data-dir", str(tmp_path), "--writes", "200", "--max-p99-ms", "10000")
    assert result.returncode == 0, result.stderr
    assert "200 writes of 2300 bytes" in result.stdout
    assert "p99" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("OK: p99")


def test_a_disk_slower_than_the_threshold_fails(tmp_path: Path) -> None:
    result = check_disk("--data-dir", str(tmp_path), "--writes", "50", "--max-p99-ms", "0.000001")
    assert result.returncode == 1
    assert "FAIL: p99" in result.stdout
    assert "leader elections" in result.stdout


def test_the_scratch_file_is_removed(tmp_path: Path) -> None:
    check_disk("--data-dir", str(tmp_path), "--writes", "10", "--max-p99-ms", "10000")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_data_dir_is_refused(tmp_path: Path) -> None:
    result = check_disk("--data-dir", str(tmp_path / "absent"))
    assert result.returncode == 2
    assert "is not a directory" in result.stderr
