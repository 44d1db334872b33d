"""`cairn bench --ops watch` measures watch delivery on a real, freshly started cairn.

Behaviour, not timing: a tiny run must start its own server, deliver every event to every
watcher (including watchers spread over two Watch streams), print the table row and write the
same numbers to --json. The timing itself is the benchmark's business, not the test's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cairn.cli.bench.watch import WatchCase, cases
from cairn.cli.main import build_parser


def test_watch_runs_only_when_asked() -> None:
    """The default stays put,range: the put/range numbers in README keep their meaning."""
    args = build_parser().parse_args(["bench"])
    assert args.ops == "put,range"
    assert args.watchers == "1,100,1000"


def test_watch_cases_defaults_and_overrides() -> None:
    assert cases("1,100,1000", None, None) == [
        WatchCase(1, 2000, 500.0),
        WatchCase(100, 600, 100.0),
        WatchCase(1000, 150, 20.0),
    ]
    assert cases("10", 30, 50.0) == [WatchCase(10, 30, 50.0)]
    with pytest.raises(ValueError):
        cases("0", None, None)


def test_unknown_op_is_refused() -> None:
    args = build_parser().parse_args(["bench", "--ops", "watch,scan"])
    assert args.func(args) == 2


@pytest.mark.slow
def test_tiny_watch_run_delivers_every_event(tmp_path: Path) -> None:
    out = tmp_path / "watch.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "cairn", "bench", "--ops", "watch", "--watchers", "1,101"),
            *("--watch-puts", "20", "--watch-rate", "200", "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Watch delivery" in done.stdout
    rows = [
        line.split()
        for line in done.stdout.splitlines()
        if line.split()[:2] in (["1", "200"], ["101", "200"])
    ]
    assert [row[0] for row in rows] == ["1", "101"]
    assert all(row[-1] == "100%" for row in rows), done.stdout
    document = json.loads(out.read_text())
    assert document["results"] == []  # no put/range run was asked for
    watch = {r["watchers"]: r for r in document["watch"]}
    assert sorted(watch) == [1, 101]
    for w, result in watch.items():
        assert result["server"] == "cairn"
        assert result["expected"] == w * 20
        assert result["delivered"] == result["expected"]
        assert result["error"] == ""
        assert 0 < result["lag_p50_ms"] <= result["lag_p99_ms"]
