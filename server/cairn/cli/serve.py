"""`cairn serve`: run one member until SIGTERM or SIGINT, then shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys
from pathlib import Path
from urllib.parse import urlsplit

from cairn import __version__
from cairn.api.grpc_server import build_server
from cairn.api.http_endpoints import HealthCounters, routes, serve_http
from cairn.api.learner import learner_gate
from cairn.api.rpc_stats import RpcStats
from cairn.api.services import etcd_services
from cairn.cli import fault_file, tls
from cairn.cli.config import ConfigError, ServeConfig
from cairn.errors import ErrStopped
from cairn.member import auto_compaction, corruption
from cairn.member.raft_member import ClusterSettings, RaftMember, RaftMemberError
from cairn.observe.member_metrics import connect_member
from cairn.observe.registry import CONTENT_TYPE, MetricsRegistry
from cairn.peer import PeerFaults

log = logging.getLogger("cairn.serve")

_background: set[asyncio.Task[None]] = set()
"""Tasks that live as long as the process (the TEST-ONLY fault file watcher)."""


def _bind_address(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"--listen-client-urls: {url}: only http:// and https:// are served")
    if parts.port is None:
        raise ConfigError(f"--listen-client-urls: {url} has no port")
    host = parts.hostname or "0.0.0.0"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}"


# The WAL thread and gRPC's poller thread wait for the GIL for up to the switch interval
# (5 ms by default) each time they wake; every commit batch pays that wait. A shorter interval
# measured +25% put throughput at 128 requests in flight (benchmarks/README.md).
GIL_SWITCH_INTERVAL_S = 0.0005


async def run(config: ServeConfig) -> int:
    """Serve until told to stop; returns the process exit code."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    log.info("cairn %s starting member %s", __version__, config.member.name)
    addresses = [_bind_address(url) for url in config.listen_client_urls]
    client_tls = tls.client_credentials(config)
    metrics_tls = tls.metrics_ssl_context(config)
    member = await _start_member(config)
    rpc_stats = RpcStats()
    server = build_server(
        etcd_services(
            member,
            config.advertise_client_urls,
            watch_progress_notify_interval_s=config.watch_progress_notify_interval_s,
            client_cert_auth=config.client_tls.client_cert_auth,
        ),
        config.member.max_request_bytes,
        gate=learner_gate(member),
        stats=rpc_stats,
    )
    for url, address in zip(config.listen_client_urls, addresses, strict=True):
        try:
            port = tls.add_client_port(server, url, address, client_tls)
        except RuntimeError as error:
            port = 0
            log.debug("bind %s failed: %s", address, error)
        if port == 0:
            await member.stop()
            raise ConfigError(f"listen tcp {address}: cannot bind (address in use or not local)")
    await server.start()
    log.info(
        "ready to serve client requests on %s (advertised as %s)",
        ", ".join(config.listen_client_urls),
        ", ".join(config.advertise_client_urls),
    )
    http_servers = await _serve_metrics(config, member, rpc_stats, metrics_tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[str] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda s=sig: (received.append(s.name), stop.set()))
    encryption = member.encryption
    if encryption is not None:
        # Re-read --encryption-key-file now (it is also polled): the way to rotate at once.
        loop.add_signal_handler(signal.SIGHUP, lambda: encryption.reload("SIGHUP"))
    watchdog = loop.create_task(_watch_member(member, stop))
    await stop.wait()
    watchdog.cancel()
    if received:
        log.info("received %s, shutting down", received[0])
    # Watch streams never end on their own: end them first (clients move to another member),
    # so the grace period only waits for requests in flight.
    await member.hand_over_leadership()
    member.watches.close(ErrStopped())
    for http_server in http_servers:
        http_server.close()
    await server.stop(grace=5)
    await member.stop()
    if member.removed:
        # Not a failure: etcd exits 0 too, so a Restart=on-failure unit leaves it stopped.
        log.warning("stopped: %s", member.failure)
        return 0
    if member.failure is not None:
        log.critical("stopped after a fatal error: %s", member.failure)
        return 1
    log.info("stopped serving; goodbye")
    return 0


async def _serve_metrics(
    config: ServeConfig,
    member: RaftMember,
    rpc_stats: RpcStats,
    metrics_tls: ssl.SSLContext | None,
) -> list[asyncio.Server]:
    """/metrics, /health, /livez, /readyz and /version on --listen-metrics-urls."""
    metrics = MetricsRegistry(extensive=config.extensive_metrics)
    connect_member(metrics, member, rpc_stats, lambda: tls.certificate_expiry_timestamps(config))
    health = HealthCounters()

    def refresh_health() -> None:
        metrics.mirror_counter("etcd_server_health_success", health.success)
        metrics.mirror_counter("etcd_server_health_failures", health.failures)

    metrics.on_scrape(refresh_health)
    if not config.listen_metrics_urls:
        return []
    handlers = routes(member, metrics.exposition, CONTENT_TYPE, health)
    try:
        servers = await serve_http(config.listen_metrics_urls, handlers, metrics_tls)
    except (OSError, ValueError) as error:
        await member.stop()
        raise ConfigError(f"--listen-metrics-urls: {error}") from None
    log.info("serving /metrics and /health on %s", ", ".join(config.listen_metrics_urls))
    return servers


async def _start_member(config: ServeConfig) -> RaftMember:
    """A Raft member, listening for its peers (a one-member cluster too: it can grow)."""
    peer_server, peer_channel = tls.peer_credentials(config)
    faults: PeerFaults | None = None
    if config.test_faults_file:  # TEST-ONLY: --experimental-test-faults-file
        faults = PeerFaults()
        fault_file.apply(faults, fault_file.read_blocked(Path(config.test_faults_file)))
    member = RaftMember(
        config.member,
        ClusterSettings(
            listen_peer_urls=config.listen_peer_urls,
            heartbeat_interval_ms=config.heartbeat_interval_ms,
            election_timeout_ms=config.election_timeout_ms,
            snapshot_catch_up_entries=config.snapshot_catch_up_entries,
            faults=faults,
            peer_server_credentials=peer_server,
            peer_channel_credentials=peer_channel,
        ),
    )
    try:
        await member.resolve_identity()
        member.open()
    except RaftMemberError as error:
        raise ConfigError(str(error)) from None
    await member.start()
    await _start_operator_tasks(config, member)
    if faults is not None:
        fault_file.apply_fsync_delay(
            member.wal, fault_file.read_fsync_delay(Path(config.test_faults_file))
        )
        task = asyncio.get_running_loop().create_task(
            fault_file.watch(Path(config.test_faults_file), faults, member.wal)
        )
        _background.add(task)
        task.add_done_callback(_background.discard)
    return member


async def _start_operator_tasks(config: ServeConfig, member: RaftMember) -> None:
    """The initial corruption check (before any client is served), then the periodic one and
    the auto-compactor, which run as long as the member does."""
    if config.initial_corrupt_check:
        try:
            await corruption.initial_check(member)
        except corruption.DataInconsistency as error:
            await member.stop()
            raise RaftMemberError(str(error)) from None
    if config.corrupt_check_interval_s > 0:
        member.spawn(
            corruption.run_periodic(member, config.corrupt_check_interval_s), "corruption-check"
        )
    if config.auto_compaction.enabled:
        member.spawn(
            auto_compaction.run(auto_compaction.member_host(member), config.auto_compaction),
            "auto-compaction",
        )


async def _watch_member(member: RaftMember, stop: asyncio.Event) -> None:
    while member.failure is None:
        await asyncio.sleep(0.2)
    stop.set()
