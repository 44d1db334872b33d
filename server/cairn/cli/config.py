"""etcd's server flags, ETCD_* environment variables and YAML config file, for `cairn serve`.

An operator's etcd knowledge transfers: the same names, defaults and precedence. Flags not
built yet are accepted only where the issue that builds them says so; unknown flags fail.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import yaml

from cairn.go_duration import GoDurationError, parse_go_duration
from cairn.member import auto_compaction
from cairn.member.auto_compaction import AutoCompaction
from cairn.member.config import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_TXN_OPS,
    DEFAULT_SNAPSHOT_CATCH_UP_ENTRIES,
    DEFAULT_SNAPSHOT_COUNT,
    MemberConfig,
)
from cairn.member.passwords import MAX_BCRYPT_COST, MIN_BCRYPT_COST
from cairn.pki.tls import TLSFiles

log = logging.getLogger("cairn.config")

DEFAULT_NAME = "default"
DEFAULT_CLIENT_URL = "http://localhost:2379"
DEFAULT_PEER_URL = "http://localhost:2380"
DEFAULT_INITIAL_CLUSTER = f"{DEFAULT_NAME}={DEFAULT_PEER_URL}"


class ConfigError(Exception):
    """A configuration an operator must fix; the message says what and where."""

    exit_code = 2  # a flag that does not parse (etcd's flag package exits 2 as well)


class ConfigCheckError(ConfigError):
    """Flags that parse but do not make sense together or as values (etcd exits 1)."""

    exit_code = 1


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(raw: str, flag: str) -> float:
    """A Go duration ("10m", "1m30s", "250ms") in seconds, as etcd's duration flags take.

    A bare integer is nanoseconds: etcd's YAML config file holds durations that way.
    """
    text = raw.strip()
    if re.fullmatch(r"\d+", text):
        return int(text) * 1e-9
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"invalid value {raw!r} for --{flag}: want a duration like 10m0s")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


@dataclass(frozen=True)
class Flag:
    name: str
    kind: type
    default: object
    help: str
    hidden: bool = False
    """Left out of --help (test-only flags)."""
    own_env: str = ""
    """The environment variable of a flag etcd does not have (CAIRN_*), instead of ETCD_*."""

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return self.own_env or "ETCD_" + self.dest.upper()


FLAGS: list[Flag] = [
    Flag("name", str, DEFAULT_NAME, "human-readable name for this member"),
    Flag("data-dir", str, "", "path to the data directory (default: ${name}.etcd)"),
    Flag("listen-client-urls", str, DEFAULT_CLIENT_URL, "URLs to listen on for client traffic"),
    Flag("advertise-client-urls", str, DEFAULT_CLIENT_URL, "client URLs advertised to the cluster"),
    Flag("listen-peer-urls", str, DEFAULT_PEER_URL, "URLs to listen on for peer traffic"),
    Flag(
        "initial-advertise-peer-urls", str, DEFAULT_PEER_URL, "peer URLs advertised to the cluster"
    ),
    Flag(
        "initial-cluster",
        str,
        DEFAULT_INITIAL_CLUSTER,
        "initial cluster configuration: name=url,...",
    ),
    Flag("initial-cluster-token", str, "etcd-cluster", "initial cluster token for bootstrap"),
    Flag("initial-cluster-state", str, "new", "initial cluster state ('new' or 'existing')"),
    Flag(
        "force-new-cluster",
        bool,
        False,
        "force to create a new one-member cluster from this member's data (quorum loss: the "
        "other members are removed from its configuration; see docs/disaster-recovery.md)",
    ),
    Flag(
        "max-request-bytes", int, DEFAULT_MAX_REQUEST_BYTES, "maximum client request size in bytes"
    ),
    Flag("max-txn-ops", int, DEFAULT_MAX_TXN_OPS, "maximum number of operations in a txn"),
    Flag(
        "quota-backend-bytes",
        int,
        0,
        "raise an alarm when the backend exceeds this size (0: 2 GiB; enforcement not built yet)",
    ),
    Flag(
        "snapshot-count",
        int,
        DEFAULT_SNAPSHOT_COUNT,
        "applied entries between snapshots (WAL release)",
    ),
    Flag(
        "experimental-snapshot-catchup-entries",
        int,
        DEFAULT_SNAPSHOT_CATCH_UP_ENTRIES,
        "entries kept in the log behind a snapshot, so a follower slightly behind catches up "
        "from the log rather than with a whole snapshot image",
    ),
    Flag(
        "heartbeat-interval", int, 100, "time (ms) of a heartbeat interval (used once Raft lands)"
    ),
    Flag(
        "election-timeout",
        int,
        1000,
        "time (ms) for an election to time out (used once Raft lands)",
    ),
    Flag(
        "experimental-watch-progress-notify-interval",
        str,
        "10m0s",
        "duration of periodic watch progress notifications (Go duration, e.g. 10m0s)",
    ),
    Flag(
        "listen-metrics-urls",
        str,
        "",
        "additional URLs to serve /metrics, /health, /livez, /readyz and /version on "
        "(https uses the client TLS settings)",
    ),
    Flag(
        "metrics",
        str,
        "basic",
        "'basic' or 'extensive' (adds the gRPC handling-latency histogram)",
    ),
    Flag(
        "auth-token",
        str,
        "simple",
        "auth token type: 'simple' (random tokens, kept by every member); 'jwt' is not built",
    ),
    Flag("auth-token-ttl", int, 300, "seconds a simple token lives without being used"),
    Flag("bcrypt-cost", int, 10, "bcrypt cost of the stored password hashes (4-31)"),
    Flag(
        "auto-compaction-mode",
        str,
        "periodic",
        "interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for "
        "duration based retention, defaulting to hours if no time unit is provided "
        "(e.g. '5m'). 'revision' for revision number based retention",
    ),
    Flag(
        "auto-compaction-retention",
        str,
        "0",
        "auto compaction retention for mvcc key value store; 0 means disable auto compaction",
    ),
    Flag(
        "experimental-test-revision-compaction-interval",
        str,
        "5m0s",
        "TEST-ONLY: how often revision-mode auto-compaction checks (etcd: a fixed 5 minutes)",
        hidden=True,
    ),
    Flag(
        "experimental-initial-corrupt-check",
        bool,
        False,
        "check the data against the peers' before serving clients; refuse to start on a mismatch",
    ),
    Flag(
        "experimental-corrupt-check-time",
        str,
        "0s",
        "duration between the leader's corruption checks (raise the CORRUPT alarm on a "
        "mismatch); 0s disables them",
    ),
    Flag("log-level", str, "info", "debug, info, warn, error, panic or fatal"),
    Flag("logger", str, "zap", "accepted for etcd compatibility; cairn logs plain text lines"),
    Flag(
        "log-outputs",
        str,
        "default",
        "'default' or 'stderr' or 'stdout' or file paths, comma-separated",
    ),
    Flag("cert-file", str, "", "path to the client server TLS cert file (client port)"),
    Flag("key-file", str, "", "path to the client server TLS key file"),
    Flag(
        "trusted-ca-file",
        str,
        "",
        "path to the client server TLS trusted CA file; clients must then present a "
        "certificate it signed (as in etcd)",
    ),
    Flag("client-cert-auth", bool, False, "require client certificates on https client URLs"),
    Flag("peer-cert-file", str, "", "path to the peer server TLS cert file (peer port)"),
    Flag("peer-key-file", str, "", "path to the peer server TLS key file"),
    Flag("peer-trusted-ca-file", str, "", "path to the peer server TLS trusted CA file"),
    Flag("peer-client-cert-auth", bool, False, "require peer certificates on https peer URLs"),
    Flag(
        "encryption-key-file",
        str,
        "",
        "cairn's own: YAML file of AES keys (ids, base64 secrets) and the active one; "
        "stored values and WAL entries are sealed with AES-GCM (README: Encryption at rest)",
        own_env="CAIRN_ENCRYPTION_KEY_FILE",
    ),
    Flag(
        "experimental-test-faults-file",
        str,
        "",
        "TEST-ONLY fault injection, never for production: a file polled every 50 ms that lists "
        "the peer member IDs (hex, one per line) whose traffic this member drops in both "
        "directions, and `wal-fsync-delay <duration>` lines that slow every WAL fsync; a "
        "missing or empty file heals every link and removes the delay (cairn.cli.fault_file)",
        hidden=True,
    ),
]
FLAGS_BY_NAME = {f.name: f for f in FLAGS}


@dataclass
class ServeConfig:
    """Everything `cairn serve` runs with."""

    member: MemberConfig
    listen_client_urls: list[str]
    advertise_client_urls: list[str]
    listen_peer_urls: list[str]
    initial_advertise_peer_urls: list[str]
    client_tls: TLSFiles = field(default_factory=TLSFiles)
    """--cert-file, --key-file, --trusted-ca-file, --client-cert-auth (client port)."""
    peer_tls: TLSFiles = field(default_factory=TLSFiles)
    """--peer-cert-file, --peer-key-file, --peer-trusted-ca-file, --peer-client-cert-auth."""
    log_level: str = "info"
    log_outputs: list[str] = field(default_factory=lambda: ["default"])
    heartbeat_interval_ms: int = 100
    election_timeout_ms: int = 1000
    snapshot_catch_up_entries: int = DEFAULT_SNAPSHOT_CATCH_UP_ENTRIES
    watch_progress_notify_interval_s: float = 600.0
    listen_metrics_urls: list[str] = field(default_factory=list)
    """--listen-metrics-urls: where the HTTP endpoints are served (none when empty)."""
    extensive_metrics: bool = False
    """--metrics=extensive: also export grpc_server_handling_seconds."""
    test_faults_file: str = ""
    """TEST-ONLY: --experimental-test-faults-file; empty means no fault injection at all."""
    auto_compaction: AutoCompaction = field(default_factory=AutoCompaction)
    """--auto-compaction-mode and --auto-compaction-retention."""
    initial_corrupt_check: bool = False
    corrupt_check_interval_s: float = 0.0
    """--experimental-corrupt-check-time; 0 disables the periodic check."""


def add_flags(parser: argparse.ArgumentParser) -> None:
    for flag in FLAGS:
        if flag.kind is bool:
            # etcd's boolean flags: `--client-cert-auth` alone, or `--client-cert-auth=false`.
            parser.add_argument(
                f"--{flag.name}",
                dest=flag.dest,
                nargs="?",
                const=True,
                type=lambda raw, name=flag.name: _parse_bool(raw, f"--{name}"),
                default=None,
                help=flag.help,
            )
            continue
        parser.add_argument(
            f"--{flag.name}",
            dest=flag.dest,
            type=flag.kind,
            default=None,
            help=argparse.SUPPRESS if flag.hidden else flag.help,
        )
    parser.add_argument(
        "--config-file", default=None, help="path to an etcd-style YAML config file"
    )


def resolve(args: argparse.Namespace, environ: Mapping[str, str]) -> ServeConfig:
    """Merge config file, flags, environment and defaults the way etcd does.

    With --config-file, the file is the whole configuration (flags and ETCD_* are ignored, as
    etcd ignores them). Otherwise a flag wins over nothing, an ETCD_* variable fills a flag
    that was not given, and giving both is an error, as it is in etcd.
    """
    values: dict[str, object] = {}
    config_file = args.config_file or environ.get("ETCD_CONFIG_FILE")
    if config_file:
        values = _read_config_file(config_file)
        log.info(
            "loaded configuration from %s; command-line flags and ETCD_* are ignored", config_file
        )
    else:
        for flag in FLAGS:
            given = getattr(args, flag.dest)
            from_env = environ.get(flag.env)
            if given is not None and from_env is not None:
                raise ConfigError(
                    f"conflicting environment variable {flag.env!r} is shadowed by corresponding "
                    "command-line flag (either unset environment variable or disable flag)"
                )
            if given is not None:
                values[flag.name] = given
            elif from_env is not None:
                values[flag.name] = _convert(flag, from_env, flag.env)
        known = {f.env for f in FLAGS} | {"ETCD_CONFIG_FILE"}
        for key in environ:
            if key.startswith("ETCD_") and key not in known and key != "ETCDCTL_API":
                log.warning("unrecognized environment variable %s", key)
    return _build(values)


def _parse_bool(raw: object, where: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "t"):
        return True
    if text in ("false", "0", "f"):
        return False
    raise ConfigError(f"invalid value {raw!r} for {where}: want true or false")


def _convert(flag: Flag, raw: object, where: str) -> object:
    if flag.kind is bool:
        return _parse_bool(raw, where)
    if flag.kind is int:
        try:
            return int(str(raw))
        except ValueError:
            raise ConfigError(f"invalid value {raw!r} for {where}: want an integer") from None
    if flag.name in _GO_DURATION_FLAGS and isinstance(raw, int) and not isinstance(raw, bool):
        return f"{raw}ns"  # etcd's YAML holds a Go duration as its nanoseconds
    return str(raw)


# Duration flags read with Go's duration syntax (a bare number is an error on the command line).
_GO_DURATION_FLAGS = frozenset(
    ("experimental-corrupt-check-time", "experimental-test-revision-compaction-interval")
)


def _read_config_file(path: str) -> dict[str, object]:
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle) or {}
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must be a YAML mapping of etcd setting names")
    values: dict[str, object] = {}
    for key, raw in _flatten_transport_security(loaded).items():
        flag = FLAGS_BY_NAME.get(str(key))
        if flag is None:
            log.warning(
                "config file %s: setting %r is not supported by cairn yet; ignored", path, key
            )
            continue
        values[flag.name] = _convert(flag, raw, f"{key!r} in {path}")
    return values


_TRANSPORT_SECURITY = {"client-transport-security": "", "peer-transport-security": "peer-"}
_TRANSPORT_KEYS = ("cert-file", "key-file", "trusted-ca-file", "client-cert-auth")


def _flatten_transport_security(loaded: Mapping[object, object]) -> dict[object, object]:
    """etcd's YAML nests TLS under client-/peer-transport-security; map it to the flag names."""
    flat: dict[object, object] = {}
    for key, raw in loaded.items():
        prefix = _TRANSPORT_SECURITY.get(str(key))
        if prefix is None:
            flat[key] = raw
            continue
        if not isinstance(raw, dict):
            raise ConfigError(f"config file: {key} must be a mapping")
        for inner, value in raw.items():
            if inner in _TRANSPORT_KEYS:
                if value not in (None, ""):
                    flat[prefix + str(inner)] = value
            elif value not in (None, "", False):
                log.warning("config file: %s.%s is not supported by cairn; ignored", key, inner)
    return flat


def _get(values: Mapping[str, object], name: str) -> object:
    return values.get(name, FLAGS_BY_NAME[name].default)


def split_urls(raw: str, flag: str) -> list[str]:
    urls = [u.strip() for u in raw.split(",") if u.strip()]
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "unix", "unixs") or not parts.netloc:
            raise ConfigError(f"--{flag}: {url!r} is not a URL like http://127.0.0.1:2379")
    return urls


def parse_initial_cluster(raw: str) -> dict[str, list[str]]:
    """`a=http://h1:2380,a=http://h1b:2380,b=http://h2:2380` → {a: [...], b: [...]}."""
    members: dict[str, list[str]] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise ConfigError(f"--initial-cluster: {item!r} is not of the form name=peer-url")
        members.setdefault(name, []).extend(split_urls(url, "initial-cluster"))
    return members


def _build(values: Mapping[str, object]) -> ServeConfig:
    name = str(_get(values, "name"))
    data_dir = str(_get(values, "data-dir")) or f"{name}.etcd"
    advertise_peers = split_urls(
        str(_get(values, "initial-advertise-peer-urls")), "initial-advertise-peer-urls"
    )
    initial_cluster_raw = str(_get(values, "initial-cluster"))
    if initial_cluster_raw == DEFAULT_INITIAL_CLUSTER and name != DEFAULT_NAME:
        # etcd's rule: a named member without --initial-cluster forms a cluster of itself.
        initial_cluster_raw = ",".join(f"{name}={url}" for url in advertise_peers)
    state = str(_get(values, "initial-cluster-state"))
    if state not in ("new", "existing"):
        raise ConfigError(f"--initial-cluster-state: {state!r} must be 'new' or 'existing'")
    log_level = str(_get(values, "log-level")).lower()
    if log_level not in ("debug", "info", "warn", "error", "dpanic", "panic", "fatal"):
        raise ConfigError(f"--log-level: unknown level {log_level!r}")
    max_request_bytes = int(_get(values, "max-request-bytes"))  # type: ignore[call-overload]
    if max_request_bytes <= 0:
        raise ConfigError("--max-request-bytes must be positive")
    catch_up = int(_get(values, "experimental-snapshot-catchup-entries"))  # type: ignore[call-overload]
    if catch_up < 0:
        raise ConfigError("--experimental-snapshot-catchup-entries must not be negative")
    metrics_level = str(_get(values, "metrics"))
    if metrics_level not in ("basic", "extensive"):
        raise ConfigError(f"--metrics: {metrics_level!r} must be 'basic' or 'extensive'")
    metrics_urls_raw = str(_get(values, "listen-metrics-urls"))
    auth_token = str(_get(values, "auth-token"))
    if auth_token.split(",", 1)[0] != "simple":
        raise ConfigError(
            f"--auth-token: {auth_token!r}: cairn only has simple tokens ('jwt' is not built)"
        )
    token_ttl = int(_get(values, "auth-token-ttl"))  # type: ignore[call-overload]
    if token_ttl <= 0:
        raise ConfigError("--auth-token-ttl must be positive")
    bcrypt_cost = int(_get(values, "bcrypt-cost"))  # type: ignore[call-overload]
    if not MIN_BCRYPT_COST <= bcrypt_cost <= MAX_BCRYPT_COST:
        raise ConfigError(
            f"--bcrypt-cost: {bcrypt_cost} is outside bcrypt's range "
            f"[{MIN_BCRYPT_COST}, {MAX_BCRYPT_COST}]"
        )
    member = MemberConfig(
        name=name,
        data_dir=data_dir,
        initial_cluster=parse_initial_cluster(initial_cluster_raw),
        initial_cluster_token=str(_get(values, "initial-cluster-token")),
        initial_cluster_state=state,
        max_request_bytes=max_request_bytes,
        max_txn_ops=int(_get(values, "max-txn-ops")),  # type: ignore[call-overload]
        snapshot_count=int(_get(values, "snapshot-count")),  # type: ignore[call-overload]
        quota_backend_bytes=int(_get(values, "quota-backend-bytes")),  # type: ignore[call-overload]
        auth_token_ttl_s=token_ttl,
        bcrypt_cost=bcrypt_cost,
        force_new_cluster=bool(_get(values, "force-new-cluster")),
        encryption_key_file=str(_get(values, "encryption-key-file")),
    )
    return ServeConfig(
        member=member,
        listen_client_urls=split_urls(
            str(_get(values, "listen-client-urls")), "listen-client-urls"
        ),
        advertise_client_urls=split_urls(
            str(_get(values, "advertise-client-urls")), "advertise-client-urls"
        ),
        listen_peer_urls=split_urls(str(_get(values, "listen-peer-urls")), "listen-peer-urls"),
        initial_advertise_peer_urls=advertise_peers,
        client_tls=_tls_files(values, ""),
        peer_tls=_tls_files(values, "peer-"),
        log_level=log_level,
        log_outputs=[o.strip() for o in str(_get(values, "log-outputs")).split(",") if o.strip()],
        heartbeat_interval_ms=int(_get(values, "heartbeat-interval")),  # type: ignore[call-overload]
        election_timeout_ms=int(_get(values, "election-timeout")),  # type: ignore[call-overload]
        snapshot_catch_up_entries=catch_up,
        watch_progress_notify_interval_s=parse_duration(
            str(_get(values, "experimental-watch-progress-notify-interval")),
            "experimental-watch-progress-notify-interval",
        ),
        listen_metrics_urls=(
            split_urls(metrics_urls_raw, "listen-metrics-urls") if metrics_urls_raw else []
        ),
        extensive_metrics=metrics_level == "extensive",
        test_faults_file=str(_get(values, "experimental-test-faults-file")),
        auto_compaction=_auto_compaction(values),
        initial_corrupt_check=bool(_get(values, "experimental-initial-corrupt-check")),
        corrupt_check_interval_s=_go_duration_flag(values, "experimental-corrupt-check-time"),
    )


def _go_duration_flag(values: Mapping[str, object], name: str) -> float:
    """A duration flag etcd parses with Go's flag package (its error text), in seconds."""
    raw = str(_get(values, name))
    try:
        nanos = parse_go_duration(raw)
    except GoDurationError:
        raise ConfigError(f'invalid value "{raw}" for flag -{name}: parse error') from None
    return max(0, nanos) / 1e9


def _auto_compaction(values: Mapping[str, object]) -> AutoCompaction:
    try:
        return auto_compaction.parse(
            str(_get(values, "auto-compaction-mode")),
            str(_get(values, "auto-compaction-retention")),
            _go_duration_flag(values, "experimental-test-revision-compaction-interval"),
        )
    except auto_compaction.AutoCompactionError as error:
        raise ConfigCheckError(str(error)) from None


def _tls_files(values: Mapping[str, object], prefix: str) -> TLSFiles:
    files = TLSFiles(
        cert_file=str(_get(values, f"{prefix}cert-file")),
        key_file=str(_get(values, f"{prefix}key-file")),
        trusted_ca_file=str(_get(values, f"{prefix}trusted-ca-file")),
        client_cert_auth=bool(_get(values, f"{prefix}client-cert-auth")),
    )
    if bool(files.cert_file) != bool(files.key_file):
        raise ConfigError(f"--{prefix}cert-file and --{prefix}key-file must be given together")
    return files


def single_member_flags(name: str, data_dir: str, client_url: str, peer_url: str) -> list[str]:
    """etcd's flags for a one-member cluster on the given URLs (dev cluster, bench, tests)."""
    return [
        f"--name={name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={name}={peer_url}",
    ]


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> ServeConfig:
    """Parse `cairn serve` arguments (used by tests and by the CLI)."""
    parser = argparse.ArgumentParser(prog="cairn serve")
    add_flags(parser)
    return resolve(parser.parse_args(list(argv)), os.environ if environ is None else environ)
