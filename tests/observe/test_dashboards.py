"""The dashboards: every query is valid PromQL over catalog metrics, every panel explains
itself, and the thresholds drawn are the alert thresholds."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cairn.observe import alerts, catalog, dashboards, promql, render, textfile
from cairn.observe import thresholds as t

REPO = Path(__file__).resolve().parents[2]
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$cluster": "cairn",
    "$instance": "m1:2379",
}
METRIC_PREFIXES = ("etcd_", "grpc_", "cairn_", "process_", "python_")


def panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p["type"] != "row"]


def queries(board: dict) -> list[str]:
    return [target["expr"] for p in panels(board) for target in p["targets"]]


def as_prometheus_query(expr: str) -> str:
    """What Grafana sends Prometheus once it has filled in the template variables."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def all_expressions() -> list[str]:
    exprs = [q for make in dashboards.DASHBOARDS.values() for q in queries(make())]
    exprs += [r["expr"] for g in alerts.rule_groups()["groups"] for r in g["rules"]]
    return exprs


BOARDS = {name: make() for name, make in dashboards.DASHBOARDS.items()}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (Debian prometheus)")
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    exprs = [as_prometheus_query(q) for board in BOARDS.values() for q in queries(board)]
    for board in BOARDS.values():
        for variable in board["templating"]["list"]:
            # label_values(<series selector>, <label>) is Grafana's; the selector is PromQL.
            found = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
            if variable["type"] == "query":
                assert found, variable["query"]
                exprs.append(as_prometheus_query(found.group(1)))
    wrapped = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(wrapped))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_every_metric_named_anywhere_is_in_the_catalog() -> None:
    specs = (*catalog.CATALOG, *textfile.TEXTFILE_METRICS)
    known = {s.name for s in specs}
    label_names = {label for s in specs for label in s.labels}
    for expr in all_expressions():
        unquoted = re.sub(r'"[^"]*"', '""', expr)
        for word in re.findall(r"\b[a-z_][a-z0-9_]*\b", unquoted):
            if word.startswith(METRIC_PREFIXES) and word not in label_names:
                base = re.sub(r"_(bucket|count|sum)$", "", word)
                assert word in known or base in known, f"{word} in {expr!r}"


def test_a_metric_missing_from_the_catalog_breaks_the_render(monkeypatch) -> None:
    trimmed = tuple(s for s in catalog.CATALOG if s.name != "etcd_disk_wal_fsync_duration_seconds")
    monkeypatch.setattr(catalog, "CATALOG", trimmed)
    promql._kinds.cache_clear()
    try:
        with pytest.raises(promql.UnknownMetric, match="etcd_disk_wal_fsync_duration_seconds"):
            render.files()
    finally:
        monkeypatch.undo()
        promql._kinds.cache_clear()


def test_a_histogram_cannot_be_read_as_a_plain_series() -> None:
    with pytest.raises(promql.UnknownMetric):
        promql.series("etcd_disk_wal_fsync_duration_seconds")
    with pytest.raises(promql.UnknownMetric):
        promql.bucket("etcd_server_has_leader")


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_panel_has_a_description_a_unit_and_the_datasource_variable(name: str) -> None:
    for panel in panels(BOARDS[name]):
        assert len(panel["description"]) > 40, panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["datasource"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_boards_offer_datasource_cluster_and_instance_pickers(name: str) -> None:
    variables = {v["name"]: v for v in BOARDS[name]["templating"]["list"]}
    assert list(variables) == ["datasource", "cluster", "instance"]
    assert variables["datasource"]["type"] == "datasource"
    assert "job" in variables["cluster"]["query"]
    assert "$cluster" in variables["instance"]["query"]


def test_the_member_board_shows_exactly_one_member() -> None:
    board = BOARDS["cairn-member-detail.json"]
    instance = next(v for v in board["templating"]["list"] if v["name"] == "instance")
    assert instance["multi"] is False and instance["includeAll"] is False
    assert all('instance="$instance"' in q for q in queries(board) if "$instance" in q)


def _steps(board: dict, title: str) -> list[float]:
    panel = next(p for p in panels(board) if p["title"] == title)
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [s["value"] for s in steps if s["value"] is not None]


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("WAL fsync p50 / p99", [t.WAL_FSYNC_P99_WARNING_S, t.WAL_FSYNC_P99_CRITICAL_S]),
        ("Backend commit p99", [t.BACKEND_COMMIT_P99_WARNING_S]),
        ("Quota used", [t.QUOTA_USED_CRITICAL_PERCENT]),
        (
            "Error ratio by method",
            [t.FAILED_GRPC_WARNING_PERCENT, t.FAILED_GRPC_CRITICAL_PERCENT],
        ),
        ("Latency p99 by method", [t.GRPC_P99_CRITICAL_S]),
        ("Peer round trip p99", [t.PEER_RTT_P99_WARNING_S]),
    ],
)
def test_graphs_draw_the_alert_thresholds(title: str, expected: list[float]) -> None:
    for board in BOARDS.values():
        assert _steps(board, title) == expected


def test_alert_rules_use_the_same_threshold_constants() -> None:
    text = render.rules_text()
    fsync = [
        r
        for g in yaml.safe_load(text)["groups"]
        for r in g["rules"]
        if r["alert"] == "etcdHighFsyncDurations"
    ]
    limits = sorted(float(r["expr"].rsplit(">", 1)[1]) for r in fsync)
    assert limits == [t.WAL_FSYNC_P99_WARNING_S, t.WAL_FSYNC_P99_CRITICAL_S]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_panels_fit_the_grid_without_overlapping(name: str) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in BOARDS[name]["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
