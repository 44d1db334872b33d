"""The metric catalog is well formed and carries etcd's facts the dashboards and alerts rely on."""

from cairn.observe.catalog import BY_NAME, CATALOG, MetricType, Origin


def test_names_are_unique() -> None:
    assert len(BY_NAME) == len(CATALOG)


def test_only_histograms_have_buckets_and_they_ascend() -> None:
    for entry in CATALOG:
        if entry.type is MetricType.HISTOGRAM:
            assert entry.buckets, entry.name
            assert list(entry.buckets) == sorted(set(entry.buckets)), entry.name
        else:
            assert not entry.buckets, entry.name


def test_cairn_own_metrics_carry_the_cairn_prefix() -> None:
    for entry in CATALOG:
        if entry.origin is Origin.CAIRN:
            assert entry.name.startswith("cairn_"), entry.name
        else:
            assert not entry.name.startswith("cairn_"), entry.name


def test_disk_latency_histograms_use_etcds_buckets() -> None:
    expected = [0.001 * 2**n for n in range(14)]
    for name in (
        "etcd_disk_wal_fsync_duration_seconds",
        "etcd_disk_backend_commit_duration_seconds",
    ):
        assert list(BY_NAME[name].buckets) == expected


def test_peer_round_trip_histogram_is_labelled_by_destination() -> None:
    entry = BY_NAME["etcd_network_peer_round_trip_time_seconds"]
    assert entry.labels == ("To",)
    assert list(entry.buckets) == [0.0001 * 2**n for n in range(16)]


def test_grpc_handling_histogram_needs_extensive_metrics() -> None:
    assert BY_NAME["grpc_server_handling_seconds"].extensive
    assert not any(e.extensive for e in CATALOG if e.name != "grpc_server_handling_seconds")
