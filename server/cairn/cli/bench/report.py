"""Tables, CPU verdicts and target checks printed after a benchmark."""

from __future__ import annotations

import os
from typing import Any

from cairn.cli.bench.load import RunResult

OPS = ("put", "range")
DEFAULT_CONCURRENCY = (1, 16, 128)
DEFAULT_KEY_SPACE = 10_000
DEFAULT_VALUE_SIZE = 256
KEY_PREFIX = b"/cairn-bench/"
RPC_TIMEOUT_S = 10.0
# A client process whose CPU time is at least this share of wall time is saturated: the
# numbers it produced say more about the client than about the server.
CLIENT_SATURATED = 0.85
# Targets of the issue this bench was written for (see the module docstring of `main`).
TARGET_PUT_THROUGHPUT_RATIO = 0.3  # cairn put ops/s at N=128 >= 0.3 x etcd's
TARGET_PUT_LATENCY_RATIO = 2.0  # cairn sequential put p50 <= 2 x etcd's
TARGET_CLUSTER_RANGE_THROUGHPUT_RATIO = 0.3  # cluster mode: cairn range ops/s at N=128


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def render_table(cairn: list[RunResult], etcd: list[RunResult]) -> str:
    """The main table: cairn, etcd and cairn/etcd ratios for every (op, N)."""
    by_key = {(r.op, r.concurrency): r for r in etcd}
    head = f"{'op':6s} {'N':>4s} | {'ops/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s}"
    lines = []
    if etcd:
        lines.append(f"{'':11s}| {'cairn':^24s} | {'etcd':^24s} | {'cairn/etcd':^24s}")
        lines.append(
            head + f" | {'ops/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s}"
            f" | {'ops/s':>8s} {'p50':>7s} {'p99':>7s}"
        )
    else:
        lines.append(f"{'':11s} | {'cairn':^24s}")
        lines.append(head)
    lines.append("-" * len(lines[-1]))
    for r in cairn:
        row = f"{r.op:6s} {r.concurrency:>4d} | {r.ops_per_s:8.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f}"
        e = by_key.get((r.op, r.concurrency))
        if e is not None:
            row += f" | {e.ops_per_s:8.0f} {e.p50_ms:7.2f} {e.p99_ms:7.2f}"
            row += (
                f" | {fmt(_ratio(r.ops_per_s, e.ops_per_s), '8.2f')}"
                f" {fmt(_ratio(r.p50_ms, e.p50_ms), '7.2f')}"
                f" {fmt(_ratio(r.p99_ms, e.p99_ms), '7.2f')}"
            )
        lines.append(row)
    return "\n".join(lines)


def verdict(r: RunResult, cores: int) -> str:
    """What limited a run, judged from where the CPU went."""
    notes = []
    if r.client_bound:
        notes.append("CLIENT-BOUND (a client process used a full core)")
    if r.server_cpu_cores is not None and r.server_cpu_cores >= 0.85:
        notes.append("server-bound" + (" (a full core: the GIL)" if r.server == "cairn" else ""))
    if r.machine_busy_cores >= 0.9 * cores:
        notes.append("machine saturated")
    if r.other_cores is not None and r.other_cores >= 0.25:
        notes.append(f"noisy: {r.other_cores:.2f} cores used by other processes")
    if not notes:
        notes.append("latency-bound (waiting, e.g. on fsync or the network)")
    if r.errors:
        notes.append(f"{r.errors} errors: {r.first_error}")
    return "; ".join(notes)


def render_cpu(results: list[RunResult]) -> str:
    """Where the CPU went in each run, so a client-bound number is recognisable as such."""
    lines = [
        f"{'server':6s} {'op':6s} {'N':>4s} {'procs':>5s} {'client':>7s} {'busiest':>7s} "
        f"{'server':>7s} {'other':>7s} {'machine':>7s}  verdict",
        f"{'':6s} {'':6s} {'':>4s} {'':>5s} {'cores':>7s} {'proc':>7s} {'cores':>7s} "
        f"{'cores':>7s} {'cores':>7s}",
    ]
    cores = os.cpu_count() or 1
    for r in results:
        lines.append(
            f"{r.server:6s} {r.op:6s} {r.concurrency:>4d} {r.client_procs:>5d} "
            f"{r.client_cpu_cores:7.2f} {r.client_max_proc_cpu:7.2f} "
            f"{fmt(r.server_cpu_cores, '7.2f'):>7s} {fmt(r.other_cores, '7.2f'):>7s} "
            f"{r.machine_busy_cores:7.2f}  {verdict(r, cores)}"
        )
    return "\n".join(lines)


def targets(cairn: list[RunResult], etcd: list[RunResult], cluster: bool = False) -> dict[str, Any]:
    """The issue's targets, evaluated where both sides were measured.

    Single member: put N=128 throughput and N=1 put p50. Cluster mode: put and range N=128
    throughput (both >= 0.3 x etcd).
    """
    c = {(r.op, r.concurrency): r for r in cairn}
    e = {(r.op, r.concurrency): r for r in etcd}
    out: dict[str, Any] = {}
    if ("put", 128) in c and ("put", 128) in e:
        ratio = _ratio(c["put", 128].ops_per_s, e["put", 128].ops_per_s)
        out["put_throughput_n128_ratio"] = {
            "value": ratio,
            "target": f">= {TARGET_PUT_THROUGHPUT_RATIO}",
            "met": ratio is not None and ratio >= TARGET_PUT_THROUGHPUT_RATIO,
        }
    if cluster and ("range", 128) in c and ("range", 128) in e:
        ratio = _ratio(c["range", 128].ops_per_s, e["range", 128].ops_per_s)
        out["range_throughput_n128_ratio"] = {
            "value": ratio,
            "target": f">= {TARGET_CLUSTER_RANGE_THROUGHPUT_RATIO}",
            "met": ratio is not None and ratio >= TARGET_CLUSTER_RANGE_THROUGHPUT_RATIO,
        }
    if not cluster and ("put", 1) in c and ("put", 1) in e:
        ratio = _ratio(c["put", 1].p50_ms, e["put", 1].p50_ms)
        out["put_latency_n1_p50_ratio"] = {
            "value": ratio,
            "target": f"<= {TARGET_PUT_LATENCY_RATIO}",
            "met": ratio is not None and ratio <= TARGET_PUT_LATENCY_RATIO,
        }
    return out
