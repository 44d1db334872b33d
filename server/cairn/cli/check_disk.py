"""`cairn check disk`: is this disk fast enough to hold a member's write-ahead log?

Every write a member acknowledges waits for an fdatasync of its WAL, and a follower that
fsyncs slowly misses heartbeats: slow disks show up as leader elections, not as slow writes.
etcd's guidance is a 99th percentile fdatasync latency under 10 ms (measured with fio writing
2300-byte blocks with fdatasync after each). This check does the same measurement with no
tool but Python, in the data directory itself, so a deployment can refuse a disk before a
member is put on it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WRITES = 1000
DEFAULT_BLOCK_BYTES = 2300
"""fio's block size in etcd's disk guidance: about one small WAL entry."""
DEFAULT_MAX_P99_MS = 10.0
"""etcd's guidance for the 99th percentile of WAL fdatasync latency."""


@dataclass(frozen=True)
class Latencies:
    """fdatasync durations of one run, in seconds, sorted."""

    samples: list[float]

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile: the smallest sample at or above the fraction of them."""
        rank = max(1, math.ceil(fraction * len(self.samples)))
        return self.samples[rank - 1]

    @property
    def p50_ms(self) -> float:
        return self.percentile(0.50) * 1000

    @property
    def p99_ms(self) -> float:
        return self.percentile(0.99) * 1000

    @property
    def max_ms(self) -> float:
        return self.samples[-1] * 1000


def measure(directory: Path, writes: int, block_bytes: int) -> Latencies:
    """Append ``writes`` blocks to a scratch file in ``directory``, fdatasync after each."""
    block = os.urandom(block_bytes)
    durations: list[float] = []
    handle, name = tempfile.mkstemp(prefix=".cairn-disk-check-", dir=directory)
    try:
        for _ in range(writes):
            os.write(handle, block)
            started = time.perf_counter()
            os.fdatasync(handle)
            durations.append(time.perf_counter() - started)
    finally:
        os.close(handle)
        os.unlink(name)
    return Latencies(sorted(durations))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", required=True, help="the member's data directory (must exist)"
    )
    parser.add_argument(
        "--writes",
        type=int,
        default=DEFAULT_WRITES,
        help=f"how many blocks to write and fdatasync (default: {DEFAULT_WRITES})",
    )
    parser.add_argument(
        "--block-size",
        type=int,
        default=DEFAULT_BLOCK_BYTES,
        help=f"bytes per write (default: {DEFAULT_BLOCK_BYTES}, as etcd's fio guidance)",
    )
    parser.add_argument(
        "--max-p99-ms",
        type=float,
        default=DEFAULT_MAX_P99_MS,
        help=f"fail when the p99 fdatasync latency is above this (default: {DEFAULT_MAX_P99_MS:g})",
    )


def main(args: argparse.Namespace) -> int:
    directory = Path(args.data_dir)
    if args.writes < 1 or args.block_size < 1 or args.max_p99_ms <= 0:
        print("cairn check disk: --writes, --block-size and --max-p99-ms must be positive",
              file=sys.stderr)  # fmt: skip
        return 2
    if not directory.is_dir():
        print(f"cairn check disk: {directory} is not a directory", file=sys.stderr)
        return 2
    try:
        latencies = measure(directory, args.writes, args.block_size)
    except OSError as error:
        print(f"cairn check disk: cannot write in {directory}: {error.strerror}", file=sys.stderr)
        return 2
    print(
        f"fdatasync latency in {directory} ({args.writes} writes of {args.block_size} bytes): "
        f"p50 {latencies.p50_ms:.2f} ms, p99 {latencies.p99_ms:.2f} ms, "
        f"max {latencies.max_ms:.2f} ms"
    )
    if latencies.p99_ms > args.max_p99_ms:
        print(
            f"FAIL: p99 {latencies.p99_ms:.2f} ms is above {args.max_p99_ms:g} ms; a member on "
            "this disk will miss heartbeats and cause leader elections (etcd's guidance: "
            "p99 under 10 ms)"
        )
        return 1
    print(f"OK: p99 {latencies.p99_ms:.2f} ms is within {args.max_p99_ms:g} ms")
    return 0
