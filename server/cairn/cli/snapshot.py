"""`cairn snapshot status|restore`: what `etcdctl snapshot status|restore` do, for cairn's
backup files (take them with `etcdctl snapshot save`; cairn.member.backup has the format).

The flags, output formats, messages and exit codes are etcdctl 3.4's (status: simple, table,
json, fields; errors as `Error: ...` on stderr), so an operator's scripts carry over; the
values differ because the file differs (see `BackupStatus` for what each column counts).

    cairn snapshot status backup.db -w table
    cairn snapshot restore backup.db --name m1 --data-dir /var/lib/cairn \\
        --initial-cluster m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380 \\
        --initial-cluster-token prod-2 --initial-advertise-peer-urls https://10.0.0.1:2380
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys

from cairn.cli import logs
from cairn.cli.config import ConfigError, parse_initial_cluster, split_urls
from cairn.member.backup import BackupError, BackupFile, BackupStatus

log = logging.getLogger("cairn.snapshot")

# etcdctl's exit codes (ctlv3/command/error.go).
EXIT_ERROR = 1
EXIT_BAD_FEATURE = 4
EXIT_BAD_ARGS = 128
FORMATS = ("simple", "table", "json", "fields")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="snapshot_command", required=True)
    status = actions.add_parser(
        "status", help="check a backup file and show its hash, revision, total keys and size"
    )
    status.add_argument("files", nargs="*", metavar="FILE")
    status.add_argument(
        "-w",
        "--write-out",
        default="simple",
        help="output format: simple, table, json or fields (etcdctl's)",
    )
    restore = actions.add_parser(
        "restore", help="make a data dir for a member of a new cluster from a backup file"
    )
    restore.add_argument("files", nargs="*", metavar="FILE")
    restore.add_argument("--name", default="default", help="human-readable name for this member")
    restore.add_argument("--data-dir", default="", help="path to the data directory")
    restore.add_argument(
        "--initial-cluster",
        default="default=http://localhost:2380",
        help="initial cluster configuration for restore bootstrap",
    )
    restore.add_argument(
        "--initial-cluster-token",
        default="etcd-cluster",
        help="initial cluster token for the cluster during restore bootstrap",
    )
    restore.add_argument(
        "--initial-advertise-peer-urls",
        default="http://localhost:2380",
        help="list of this member's peer URLs to advertise to the rest of the cluster",
    )
    restore.add_argument(
        "--skip-hash-check",
        nargs="?",
        const=True,
        default=False,
        type=lambda raw: raw.lower() in ("1", "t", "true"),
        help="ignore the snapshot integrity hash value",
    )


def main(args: argparse.Namespace) -> int:
    logs.setup()
    if args.snapshot_command == "status":
        return _status(args)
    return _restore(args)


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"Error: {message}", file=sys.stderr)
    return code


def _status(args: argparse.Namespace) -> int:
    if len(args.files) != 1:
        return _fail("snapshot status requires exactly one argument", EXIT_BAD_ARGS)
    if args.write_out == "protobuf":
        return _fail("protobuf not supported as output format", EXIT_BAD_FEATURE)
    if args.write_out not in FORMATS:
        return _fail("unsupported output format", EXIT_BAD_FEATURE)
    try:
        status = BackupFile(args.files[0]).status()
    except BackupError as error:
        return _fail(str(error))
    print(render_status(status, args.write_out))
    return 0


def render_status(status: BackupStatus, write_out: str) -> str:
    """One status in etcdctl's output formats (without the final newline)."""
    if write_out == "json":
        return json.dumps(
            {
                "hash": status.hash,
                "revision": status.revision,
                "totalKey": status.total_key,
                "totalSize": status.total_size,
            },
            separators=(",", ":"),
        )
    if write_out == "fields":
        return "\n".join(
            [
                f'"Hash" : {status.hash}',
                f'"Revision" : {status.revision}',
                f'"Keys" : {status.total_key}',
                f'"Size" : {status.total_size}',
            ]
        )
    row = [
        f"{status.hash:x}",
        str(status.revision),
        str(status.total_key),
        humanize_bytes(status.total_size),
    ]
    if write_out == "table":
        return render_table(["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], [row])
    return ", ".join(row)


_SI_SUFFIXES = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def humanize_bytes(size: int) -> str:
    """A size the way etcdctl prints one (go-humanize's Bytes: SI units, one decimal below
    10, e.g. 20480 -> "20 kB", 1500 -> "1.5 kB")."""
    if size < 10:
        return f"{size} B"
    exponent = math.floor(math.log(size) / math.log(1000))
    value = math.floor(size / 1000**exponent * 10 + 0.5) / 10
    pattern = "{:.1f} {}" if value < 10 else "{:.0f} {}"
    return pattern.format(value, _SI_SUFFIXES[exponent])


def render_table(header: list[str], rows: list[list[str]]) -> str:
    """etcdctl's tables: headers centred (extra space on the right), cells right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def centred(text: str, width: int) -> str:
        left = (width - len(text)) // 2
        return " " * left + text + " " * (width - len(text) - left)

    lines = [
        rule,
        "| " + " | ".join(centred(h, w) for h, w in zip(header, widths, strict=True)) + " |",
        rule,
    ]
    for row in rows:
        lines.append("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")
    lines.append(rule)
    return "\n".join(lines)


def _restore(args: argparse.Namespace) -> int:
    from cairn.member.restore import RestoreConfig, RestoreError, restore

    if len(args.files) != 1:
        return _fail("snapshot restore requires exactly one argument", EXIT_BAD_ARGS)
    try:
        config = RestoreConfig(
            backup_path=args.files[0],
            name=args.name,
            initial_cluster=parse_initial_cluster(args.initial_cluster),
            initial_cluster_token=args.initial_cluster_token,
            initial_advertise_peer_urls=split_urls(
                args.initial_advertise_peer_urls, "initial-advertise-peer-urls"
            ),
            data_dir=args.data_dir or f"{args.name}.etcd",
            skip_hash_check=bool(args.skip_hash_check),
        )
    except ConfigError as error:
        return _fail(str(error))
    log.info("restoring snapshot %s into %s", config.backup_path, config.data_dir)
    try:
        identity, meta = restore(config)
    except RestoreError as error:
        return _fail(str(error))
    log.info(
        "restored snapshot %s into %s: member %s (%x) of cluster %x, revision %d, compacted "
        "revision %d, applied index %d",
        config.backup_path,
        config.data_dir,
        identity.name,
        identity.member_id,
        identity.cluster_id,
        meta.revision,
        meta.compact_revision,
        meta.applied_index,
    )
    return 0
