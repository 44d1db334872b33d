"""The `cairn` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from cairn.cli import config as serve_config
from cairn.cli import logs


def _serve(args: argparse.Namespace) -> int:
    from cairn.cli import serve

    try:
        config = serve_config.resolve(args, os.environ)
    except serve_config.ConfigError as error:
        logs.setup()
        print(f"cairn serve: {error}", file=sys.stderr)
        return error.exit_code
    logs.setup(config.log_level, config.log_outputs)
    return _run_server(serve.run(config))


def _run_server(coro: object) -> int:
    from cairn.cli.config import ConfigError
    from cairn.member.raft_member import RaftMemberError
    from cairn.wal import WALError

    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except (ConfigError, RaftMemberError, WALError) as error:
        print(f"cairn serve: {error}", file=sys.stderr)
        return 1


def _dev(args: argparse.Namespace) -> int:
    from cairn.cli import dev

    return dev.main(args)


def _pki(args: argparse.Namespace) -> int:
    from cairn.cli import pki

    return pki.main(args)


def _snapshot(args: argparse.Namespace) -> int:
    from cairn.cli import snapshot

    return snapshot.main(args)


def _render(args: argparse.Namespace) -> int:
    from cairn.cli import render

    return render.main(args)


def _bench(args: argparse.Namespace) -> int:
    from cairn.cli import bench

    return bench.main(args)


def _check(args: argparse.Namespace) -> int:
    if args.check_command == "disk":
        from cairn.cli import check_disk

        return check_disk.main(args)
    from cairn.cli import check_health

    return check_health.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cairn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run a member (etcd's flags and ETCD_* variables)")
    serve_config.add_flags(serve)
    serve.set_defaults(func=_serve)

    dev = commands.add_parser("dev", help="run a local cluster for development (make cluster)")
    dev.add_argument("--dir", default=".cluster", help="where the members keep their data")
    dev.add_argument("--client-port", type=int, default=2379)
    dev.add_argument("--members", type=int, default=3, help="1, 3 or 5 members")
    dev.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="TLS on client and peer ports, certificates from `cairn pki` in DIR/pki "
        "(the default; --no-tls runs both ports in plaintext)",
    )
    from cairn.cli import dev_monitoring

    dev.add_argument(
        "--prometheus-port",
        type=int,
        default=dev_monitoring.DEFAULT_PROMETHEUS_PORT,
        help="Prometheus (started when installed) listens here",
    )
    dev.add_argument(
        "--alertmanager-port",
        type=int,
        default=dev_monitoring.DEFAULT_ALERTMANAGER_PORT,
        help="Alertmanager (started when installed) listens here",
    )
    dev.set_defaults(func=_dev)

    pki = commands.add_parser("pki", help="create CAs and issue certificates (TLS)")
    from cairn.cli import pki as pki_module

    pki_module.add_arguments(pki)
    pki.set_defaults(func=_pki)

    snapshot = commands.add_parser(
        "snapshot", help="check a backup file (status) or make a data dir from it (restore)"
    )
    from cairn.cli import snapshot as snapshot_module

    snapshot_module.add_arguments(snapshot)
    snapshot.set_defaults(func=_snapshot)

    render = commands.add_parser(
        "render", help="regenerate dashboards/*.json and alerts/*.yml (observability as code)"
    )
    from cairn.cli import render as render_module

    render_module.add_arguments(render)
    render.set_defaults(func=_render)

    bench = commands.add_parser(
        "bench", help="measure put/range throughput and latency, and watch delivery (--ops watch)"
    )
    from cairn.cli import bench as bench_module

    bench_module.add_arguments(bench)
    bench.set_defaults(func=_bench)

    check = commands.add_parser(
        "check", help="preflight checks: disk fdatasync latency, endpoint health"
    )
    checks = check.add_subparsers(dest="check_command", required=True)
    from cairn.cli import check_disk, check_health

    check_disk.add_arguments(
        checks.add_parser("disk", help="fdatasync latency p99 in a data dir (etcd: < 10 ms)")
    )
    check_health.add_arguments(
        checks.add_parser("health", help="a linearizable read through each endpoint")
    )
    check.set_defaults(func=_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return int(args.func(args))
