"""`cairn render`: the committed dashboards and alert files are exactly what the sources produce."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cairn.observe import render
from cairn.observe.timing import Timing

REPO = Path(__file__).resolve().parents[2]


def test_committed_files_equal_a_fresh_render(tmp_path: Path) -> None:
    rendered = render.files()
    for relative, text in rendered.items():
        committed = (REPO / relative).read_text(encoding="utf-8")
        assert committed == text, f"{relative} is stale: run `cairn render`"


def test_no_generated_file_is_left_over_from_an_older_render() -> None:
    generated = set(render.files())
    on_disk = {str(p.relative_to(REPO)) for p in (REPO / "dashboards").glob("*.json")} | {
        str(p.relative_to(REPO)) for p in (REPO / "alerts").glob("*.yml")
    }
    assert on_disk == generated


def test_cairn_render_writes_every_file_into_out(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cairn", "render", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    for relative, text in render.files().items():
        assert (tmp_path / relative).read_text(encoding="utf-8") == text
        assert str(tmp_path / relative) in result.stdout


def test_shortened_rules_refuse_to_overwrite_the_committed_files() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cairn", "render", "--for-scale", "0.01"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "--out" in result.stderr


def test_every_dashboard_is_json_with_panels() -> None:
    for path in sorted((REPO / "dashboards").glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        assert board["panels"], path.name
        assert board["uid"] and board["title"], path.name


def test_every_alert_file_is_yaml() -> None:
    for path in sorted((REPO / "alerts").glob("*.yml")):
        assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict), path.name


def test_shortened_render_scales_for_and_windows_only() -> None:
    production = yaml.safe_load(render.rules_text())
    short = yaml.safe_load(render.rules_text(Timing(for_scale=0.01, window_scale=0.02)))
    fsync = [
        (p, s)
        for gp, gs in zip(production["groups"], short["groups"], strict=True)
        for p, s in zip(gp["rules"], gs["rules"], strict=True)
        if p["alert"] == "etcdHighFsyncDurations"
    ]
    assert fsync
    for prod_rule, short_rule in fsync:
        assert prod_rule["for"] == "10m" and short_rule["for"] == "6s"
        assert "[5m]" in prod_rule["expr"] and "[6s]" in short_rule["expr"]
        assert prod_rule["expr"].replace("[5m]", "[6s]") == short_rule["expr"]
        assert prod_rule["labels"] == short_rule["labels"]
        assert prod_rule["annotations"] == short_rule["annotations"]


@pytest.mark.parametrize("scale", ["0", "1.5", "-1"])
def test_render_refuses_scales_outside_zero_to_one(tmp_path: Path, scale: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cairn", "render", "--out", str(tmp_path), "--for-scale", scale],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
