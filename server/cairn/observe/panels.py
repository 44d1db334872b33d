"""Grafana building blocks shared by cairn's dashboards (grafanalib underneath).

Every panel carries a description saying what a bad value means, a unit, and — where an alert
watches the same quantity — a threshold at the alert's own number, so the red line on the
graph is where the pager goes off. Panels are laid out left to right in rows of three.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from grafanalib import core as g
from grafanalib._gen import DashboardEncoder

from cairn.observe.promql import series

DATASOURCE = "${datasource}"
RATE = "$__rate_interval"
PANEL_WIDTH = 8
PANEL_HEIGHT = 8
STAT_WIDTH = 4
STAT_HEIGHT = 4
GRID_WIDTH = 24


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Limit:
    """A threshold step: at or beyond ``value`` the panel turns ``color``."""

    value: float
    color: str = "red"


@dataclass
class Board:
    """Panels in reading order, rows of three graphs (or six stats) under row headers."""

    panels: list[g.Panel] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _row_height: int = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            g.RowPanel(title=title, gridPos=g.GridPos(h=1, w=GRID_WIDTH, x=0, y=self._y))
        )
        self._y += 1

    def add(self, panel: g.Panel, width: int, height: int) -> None:
        if self._x + width > GRID_WIDTH:
            self._newline()
        self.panels.append(_placed(panel, g.GridPos(h=height, w=width, x=self._x, y=self._y)))
        self._x += width
        self._row_height = max(self._row_height, height)

    def _newline(self) -> None:
        self._y += self._row_height
        self._x = 0
        self._row_height = 0


def _placed(panel: g.Panel, pos: g.GridPos) -> g.Panel:
    panel.gridPos = pos
    return panel


def _targets(queries: list[Query], instant: bool = False) -> list[g.Target]:
    return [
        g.Target(
            expr=q.expr,
            legendFormat=q.legend,
            refId=chr(ord("A") + i),
            datasource=DATASOURCE,
            instant=instant,
        )
        for i, q in enumerate(queries)
    ]


def _steps(limits: list[Limit], base: str = "green") -> list[dict[str, object]]:
    return [{"color": base, "value": None}] + [
        {"color": lim.color, "value": lim.value} for lim in limits
    ]


def graph(
    title: str,
    description: str,
    queries: list[Query],
    unit: str,
    limits: list[Limit] | None = None,
    *,
    stacked: bool = False,
) -> g.TimeSeries:
    """A time series; ``limits`` draw dashed threshold lines (the alert thresholds)."""
    return g.TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries),
        unit=unit,
        thresholds=_steps(limits or []),
        thresholdsStyleMode="dashed" if limits else "off",
        legendDisplayMode="table",
        legendCalcs=["lastNotNull", "max"],
        tooltipMode="multi",
        stacking={"mode": "normal"} if stacked else {},
        fillOpacity=10 if stacked else 0,
    )


def stat(
    title: str,
    description: str,
    query: Query,
    unit: str,
    limits: list[Limit] | None = None,
    *,
    base: str = "green",
) -> g.Stat:
    """A single number coloured by ``limits`` (``base`` below the first)."""
    return g.Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets([query], instant=True),
        format=unit,
        thresholds=_steps(limits or [], base),
        colorMode="background",
        graphMode="none",
        reduceCalc="lastNotNull",
        noValue="no data",
    )


def variables(instance_multi: bool) -> g.Templating:
    """datasource, cluster (the scrape job) and instance (a member) pickers."""
    members = series("etcd_server_has_leader")
    cluster_members = series("etcd_server_has_leader", 'job="$cluster"')
    return g.Templating(
        list=[
            g.Template(
                name="datasource",
                label="Data source",
                query="prometheus",
                type="datasource",
                default="Prometheus",
            ),
            g.Template(
                name="cluster",
                label="Cluster (job)",
                query=f"label_values({members}, job)",
                dataSource=DATASOURCE,
                refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
            ),
            g.Template(
                name="instance",
                label="Member",
                query=f"label_values({cluster_members}, instance)",
                dataSource=DATASOURCE,
                refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
                includeAll=instance_multi,
                multi=instance_multi,
                allValue=".*" if instance_multi else None,
                default="All" if instance_multi else None,
            ),
        ]
    )


def dashboard(title: str, uid: str, description: str, board: Board, instance_multi: bool) -> dict:
    """The dashboard as Grafana JSON (a plain dict, ready for json.dumps)."""
    dash = g.Dashboard(
        title=title,
        uid=uid,
        description=description,
        tags=["cairn", "etcd"],
        timezone="browser",
        refresh="30s",
        editable=False,
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        panels=board.panels,
        templating=variables(instance_multi),
        time=g.Time("now-3h", "now"),
        schemaVersion=37,
    ).auto_panel_ids()
    return json.loads(json.dumps(dash.to_json_data(), cls=DashboardEncoder))
