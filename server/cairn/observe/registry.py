"""The catalog made real: one prometheus_client instrument per entry, and etcd's exposition.

prometheus_client names a counter's sample ``<name>_total`` whatever the counter is called, so
etcd's counters without that suffix (``etcd_server_health_success``,
``etcd_network_snapshot_send_success``) would change name on the way out; it also adds
``_created`` samples etcd does not have. The text written here therefore takes every family's
name, type and help from the catalog and leaves the ``_created`` samples out, in the Prometheus
text format 0.0.4 that etcd serves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

from cairn.observe.catalog import BY_NAME, CATALOG, MetricSpec, MetricType, Origin

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Instrument = Counter | Gauge | Histogram


def _instrument(entry: MetricSpec, registry: CollectorRegistry) -> Instrument:
    if entry.type is MetricType.COUNTER:
        return Counter(entry.name, entry.help, entry.labels, registry=registry)
    if entry.type is MetricType.GAUGE:
        return Gauge(entry.name, entry.help, entry.labels, registry=registry)
    return Histogram(entry.name, entry.help, entry.labels, registry=registry, buckets=entry.buckets)


class MetricsRegistry:
    """Every catalog metric of one member, plus the runtime collectors, and its /metrics text.

    Event-driven values (latency histograms, per-call counters) are recorded as they happen;
    values that already live in the server (indexes, sizes, the peer transport's counters)
    are copied in by the refreshers registered with ``on_scrape``, just before each scrape.
    """

    def __init__(self, *, extensive: bool = False) -> None:
        self.extensive = extensive
        self._registry = CollectorRegistry(auto_describe=False)
        self._instruments: dict[str, Instrument] = {}
        for entry in CATALOG:
            if entry.origin is Origin.RUNTIME or (entry.extensive and not extensive):
                continue
            self._instruments[entry.name] = _instrument(entry, self._registry)
        ProcessCollector(registry=self._registry)
        PlatformCollector(registry=self._registry)
        GCCollector(registry=self._registry)
        self._refreshers: list[Callable[[], None]] = []
        self._mirrored: dict[tuple[str, tuple[str, ...]], float] = {}

    # ---- instruments ---------------------------------------------------------------------

    def counter(self, name: str) -> Counter:
        return cast(Counter, self._typed(name, MetricType.COUNTER))

    def gauge(self, name: str) -> Gauge:
        return cast(Gauge, self._typed(name, MetricType.GAUGE))

    def histogram(self, name: str) -> Histogram:
        return cast(Histogram, self._typed(name, MetricType.HISTOGRAM))

    def has(self, name: str) -> bool:
        """Whether this registry exports ``name`` (extensive-only ones may be absent)."""
        return name in self._instruments

    def _typed(self, name: str, kind: MetricType) -> Instrument:
        entry = BY_NAME[name]
        if entry.type is not kind:
            raise TypeError(f"{name} is a {entry.type.value} in the catalog, not a {kind.value}")
        return self._instruments[name]

    def mirror_counter(self, name: str, value: float, *label_values: str) -> None:
        """Make counter ``name`` show ``value``, a running total kept elsewhere.

        Counters only go up, by the difference since the last copy; a source that started
        again from zero (a store swapped in, a process-local counter) adds its new total.
        """
        key = (name, label_values)
        last = self._mirrored.get(key, 0.0)
        step = value - last if value >= last else value
        self._mirrored[key] = value
        counter = self.counter(name)
        child = counter.labels(*label_values) if label_values else counter
        if step > 0:
            child.inc(step)

    def on_scrape(self, refresh: Callable[[], None]) -> None:
        """Run ``refresh`` before every exposition, to copy current values in."""
        self._refreshers.append(refresh)

    # ---- exposition ----------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The /metrics body, with the catalog's names, types and help."""
        for refresh in self._refreshers:
            refresh()
        lines: list[str] = []
        for family in self._registry.collect():
            entry = BY_NAME.get(family.name) or BY_NAME.get(f"{family.name}_total")
            if entry is None:
                raise KeyError(f"{family.name} is exported but not in the metric catalog")
            lines.append(f"# HELP {entry.name} {_escape_help(entry.help)}")
            lines.append(f"# TYPE {entry.name} {entry.type.value}")
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                name = entry.name if entry.type is MetricType.COUNTER else sample.name
                lines.append(
                    f"{name}{_labels(sample.labels.items())} {floatToGoString(sample.value)}"
                )
        return ("\n".join(lines) + "\n").encode()


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{key}="{_escape_value(value)}"' for key, value in pairs)
    return f"{{{inner}}}" if inner else ""
