"""The registry exports exactly the catalog, under etcd's names, and the parts it is built from
(LevelDB stats, gRPC status labels) read their inputs right."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import plyvel
import pytest
from tests.observe.exposition import parse

from cairn.api.rpc_stats import code_label, rpc_type
from cairn.observe.catalog import CATALOG, MetricType, Origin
from cairn.observe.leveldb_stats import parse_stats
from cairn.observe.registry import MetricsRegistry


def test_every_catalog_metric_is_exported_with_its_catalog_type() -> None:
    exported = parse(MetricsRegistry(extensive=True).exposition().decode())
    for entry in CATALOG:
        assert entry.name in exported, entry.name
        assert exported[entry.name].type == entry.type.value, entry.name
    assert set(exported) == {entry.name for entry in CATALOG}


def test_the_grpc_handling_histogram_is_left_out_without_extensive_metrics() -> None:
    exported = parse(MetricsRegistry().exposition().decode())
    assert "grpc_server_handling_seconds" not in exported
    assert "grpc_server_handled_total" in exported


def test_counters_keep_etcds_name_even_without_the_total_suffix() -> None:
    registry = MetricsRegistry()
    registry.counter("etcd_server_health_success").inc(3)
    text = registry.exposition().decode()
    assert "\netcd_server_health_success 3.0\n" in text
    assert "etcd_server_health_success_total" not in text
    assert "_created" not in text


def test_histograms_carry_the_catalog_buckets() -> None:
    registry = MetricsRegistry()
    registry.histogram("etcd_disk_wal_fsync_duration_seconds").observe(0.003)
    family = parse(registry.exposition().decode())["etcd_disk_wal_fsync_duration_seconds"]
    assert sorted(family.buckets) == pytest.approx([0.001 * 2**n for n in range(14)])
    assert family.value("_bucket", le="0.004") == 1
    assert family.value("_bucket", le="0.002") == 0


def test_every_histogram_is_exported_with_its_catalog_buckets() -> None:
    registry = MetricsRegistry(extensive=True)
    histograms = [e for e in CATALOG if e.type is MetricType.HISTOGRAM]
    for entry in histograms:
        histogram = registry.histogram(entry.name)
        child = histogram.labels(*("x" for _ in entry.labels)) if entry.labels else histogram
        child.observe(0.5)
    exported = parse(registry.exposition().decode())
    for entry in histograms:
        assert sorted(exported[entry.name].buckets) == pytest.approx(list(entry.buckets))


def test_a_mirrored_counter_follows_its_source_and_survives_a_source_reset() -> None:
    registry = MetricsRegistry()
    registry.mirror_counter("etcd_mvcc_put_total", 5)
    registry.mirror_counter("etcd_mvcc_put_total", 7)
    registry.mirror_counter("etcd_mvcc_put_total", 2)  # the source started again from zero
    family = parse(registry.exposition().decode())["etcd_mvcc_put_total"]
    assert family.value() == 9


def test_asking_for_a_metric_as_the_wrong_type_fails() -> None:
    with pytest.raises(TypeError):
        MetricsRegistry().counter("etcd_server_proposals_committed_total")  # a gauge in etcd


def test_runtime_collectors_are_the_catalogs_runtime_entries() -> None:
    exported = parse(MetricsRegistry().exposition().decode())
    runtime = {e.name for e in CATALOG if e.origin is Origin.RUNTIME}
    assert runtime <= set(exported)
    assert exported["process_cpu_seconds_total"].type == MetricType.COUNTER.value


def test_leveldb_stats_of_a_real_database_parse_into_levels(tmp_path: Path) -> None:
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    try:
        for i in range(2000):
            db.put(f"key{i:05d}".encode(), os.urandom(2000))  # ~4 MB LevelDB cannot compress
        db.compact_range()
        rows = parse_stats(db.get_property(b"leveldb.stats").decode())
    finally:
        db.close()
    assert rows, "a compacted database has at least one level with files"
    assert sum(row.files for row in rows) >= 1
    assert sum(row.written_bytes for row in rows) >= 2 * 1024 * 1024
    assert sum(row.size_bytes for row in rows) >= 2 * 1024 * 1024


@pytest.mark.parametrize(
    ("code", "label"),
    [
        (grpc.StatusCode.OK, "OK"),
        (grpc.StatusCode.INVALID_ARGUMENT, "InvalidArgument"),
        (grpc.StatusCode.CANCELLED, "Canceled"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "ResourceExhausted"),
        (grpc.StatusCode.UNAVAILABLE, "Unavailable"),
    ],
)
def test_status_codes_are_spelled_as_go_spells_them(code: grpc.StatusCode, label: str) -> None:
    assert code_label(code) == label


def test_rpc_types_are_go_grpc_prometheus_names() -> None:
    assert rpc_type(False, False) == "unary"
    assert rpc_type(False, True) == "server_stream"
    assert rpc_type(True, False) == "client_stream"
    assert rpc_type(True, True) == "bidi_stream"
