"""`cairn bench`: Put and linearizable Range throughput/latency, and with ``--ops watch`` watch
delivery (events/s and put-to-event lag, see ``watch.py``), optionally next to a real etcd.

Why it is built the way it is:

- The same client drives both servers (the generated ``KVStub`` over ``grpc.aio``, or sync gRPC
  with threads), so a cairn/etcd ratio compares servers, not client libraries.
- The Python client can easily be the bottleneck, especially on a small machine where client and
  server share the cores. So the load is spread over several client processes, and every run
  reports the CPU the client processes burned, the CPU the server burned and how busy the whole
  machine was. A run where the client sat at a full core says so in the output instead of
  pretending to measure the server.
- Every run is bounded twice: a request count per (operation, N) and a wall-clock cap; worker
  processes that overstay are terminated. A benchmark that can hang is worse than none.
- Servers are fresh processes in a temporary data dir on loopback ports, so runs do not inherit
  state, and the bench never talks to anything but 127.0.0.1 (``--endpoint`` must be loopback).

This is a benchmark, not a test: it asserts nothing and exits 0 when it managed to measure,
printing whether the project's targets were met.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from cairn.cli.bench.load import RunResult, background_load, run_load
from cairn.cli.bench.report import fmt, render_cpu, render_table, targets
from cairn.cli.bench.servers import (
    Server,
    check_loopback,
    check_perf,
    existing_server,
    started_cluster,
    started_server,
)
from cairn.cli.bench.watch import (
    DEFAULT_WATCHERS,
    WatchResult,
    bench_watch,
    cases,
    render_watch_table,
)

OPS = ("put", "range")  # the default; "watch" runs only when asked (it adds ~45 s with etcd)
ALL_OPS = (*OPS, "watch")
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--against-etcd",
        action="store_true",
        help="also run the identical load against a fresh etcd (/usr/bin/etcd) and compare",
    )
    parser.add_argument(
        "--endpoint",
        default=None,
        help="HOST:PORT of an already running cairn (loopback only) instead of starting one",
    )
    parser.add_argument(
        "--endpoint-pid",
        type=int,
        default=None,
        help="process id of the server behind --endpoint, so its CPU use can be reported",
    )
    parser.add_argument(
        "--etcd-endpoint",
        default=None,
        help="HOST:PORT of an already running etcd (loopback only); implies --against-etcd",
    )
    parser.add_argument("--etcd-binary", default=shutil.which("etcd") or "/usr/bin/etcd")
    parser.add_argument(
        "--ops",
        default=",".join(OPS),
        help="comma-separated operations to measure (put, range, watch); default: put,range",
    )
    parser.add_argument(
        "--watchers",
        default=",".join(str(w) for w in DEFAULT_WATCHERS),
        help="--ops watch: comma-separated numbers of watchers of one prefix, 100 per Watch "
        "stream; default: 1,100,1000",
    )
    parser.add_argument(
        "--watch-puts",
        type=int,
        default=None,
        help="--ops watch: puts per case; default: 2000, 600, 150 for 1, 100, 1000 watchers",
    )
    parser.add_argument(
        "--watch-rate",
        type=float,
        default=None,
        help="--ops watch: puts per second; default: 500, 100, 20 for 1, 100, 1000 watchers "
        "(500, 10,000 and 20,000 events/s offered)",
    )
    parser.add_argument(
        "--concurrency",
        default=",".join(str(n) for n in DEFAULT_CONCURRENCY),
        help="comma-separated numbers of in-flight requests N; default: 1,16,128",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="measured requests per (op, N); default: 2000 for N=1, 10000 for N>=16",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="unmeasured requests before each (op, N); default: max(100, 5*N)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=30.0,
        help="wall-clock cap in seconds for each (op, N) measurement (default 30)",
    )
    parser.add_argument("--key-space", type=int, default=DEFAULT_KEY_SPACE)
    parser.add_argument("--value-size", type=int, default=DEFAULT_VALUE_SIZE)
    parser.add_argument(
        "--client-procs",
        default="auto",
        help="client processes sharing the N in-flight requests; 'auto' (default) uses 1 for "
        "N=1 and 2 otherwise (lets the client use both cores of a small machine; 1-3 measured "
        "alike within noise on a 2-core VM)",
    )
    parser.add_argument(
        "--client-mode",
        choices=("aio", "threads"),
        default="aio",
        help="grpc.aio coroutines (default, measured to load the server more) or sync gRPC with "
        "one thread per in-flight request",
    )
    parser.add_argument("--json", dest="json_path", default=None, help="write results here")
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the servers' temporary data dirs"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure each (server, op, N) this many times and keep the median run",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--cluster",
        type=int,
        default=0,
        metavar="SIZE",
        help="start SIZE-member clusters (cairn, and etcd with --against-etcd) instead of single "
        "members, drive the load against each leader and run `etcdctl check perf` on each",
    )
    parser.add_argument(
        "--check-perf-load",
        default="s",
        help="--load for `etcdctl check perf` in cluster mode (default s; '' skips it)",
    )
    parser.add_argument(
        "--check-perf-timeout",
        type=float,
        default=120.0,
        help="seconds before `etcdctl check perf` is given up on (default 120)",
    )


# ---- the whole benchmark -------------------------------------------------------------------


def _auto_procs(concurrency: int, setting: str) -> int:
    if setting != "auto":
        return max(1, int(setting))
    return 1 if concurrency == 1 else 2


def _default_requests(concurrency: int, given: int | None) -> int:
    if given is not None:
        return given
    return 2000 if concurrency == 1 else 10_000


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _preload(server: Server, args: argparse.Namespace) -> None:
    """Write every key of the key space once (unmeasured), so ranges read existing keys."""
    _progress(f"  {server.name}: preloading {args.key_space} keys")
    preload = run_load(
        server,
        "put",
        min(64, args.key_space),
        args,
        requests=args.key_space,
        warmup=0,
        procs=2,
        sequential_keys=True,
    )
    if preload.errors:
        _progress(f"  {server.name}: preload had {preload.errors} errors: {preload.first_error}")


def _median_run(runs: list[RunResult]) -> RunResult:
    return sorted(runs, key=lambda r: r.ops_per_s)[(len(runs) - 1) // 2]


def bench_servers(servers: list[Server], args: argparse.Namespace) -> dict[str, list[RunResult]]:
    """Every (op, N) against every server, interleaved: cairn, etcd, cairn, etcd, ...

    Interleaving matters on a shared machine: background load then hits both servers'
    measurements alike instead of whichever server happened to run second. Puts run first,
    then a preload, then ranges. With --rounds R, the run with the median ops/s is kept.
    """
    ops = [op.strip() for op in args.ops.split(",") if op.strip() in OPS]
    levels = [int(n) for n in args.concurrency.split(",") if n.strip()]
    results: dict[str, list[RunResult]] = {server.name: [] for server in servers}
    for op in ops:
        if op == "range":
            for server in servers:
                _preload(server, args)
        for n in levels:
            requests = _default_requests(n, args.requests)
            warmup = args.warmup if args.warmup is not None else max(100, 5 * n)
            runs: dict[str, list[RunResult]] = {server.name: [] for server in servers}
            for round_ in range(args.rounds):
                order = servers if round_ % 2 == 0 else servers[::-1]
                for server in order:
                    result = run_load(
                        server,
                        op,
                        n,
                        args,
                        requests=requests,
                        warmup=warmup,
                        procs=_auto_procs(n, args.client_procs),
                    )
                    runs[server.name].append(result)
                    _progress(_progress_line(result))
            for name, done in runs.items():
                results[name].append(_median_run(done))
    return results


def _progress_line(r: RunResult) -> str:
    line = (
        f"  {r.server:5s} {r.op:5s} N={r.concurrency:<4d} {r.ops_per_s:8.0f} ops/s  "
        f"p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  client {r.client_cpu_cores:.2f} "
        f"server {fmt(r.server_cpu_cores, '.2f')} machine {r.machine_busy_cores:.2f} cores"
    )
    if r.errors:
        line += f"  ERRORS {r.errors}: {r.first_error}"
    return line


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; 0 when it measured, 2 on bad arguments, 1 when a server failed.

    Missing a performance target is not a failure of the command: the targets are printed.
    """
    if args.etcd_endpoint:
        args.against_etcd = True
    try:
        if args.endpoint:
            check_loopback(args.endpoint)
        if args.etcd_endpoint:
            check_loopback(args.etcd_endpoint)
        ops = {op.strip() for op in args.ops.split(",") if op.strip()}
        bad = sorted(ops - set(ALL_OPS))
        if bad:
            raise ValueError(f"--ops: unknown {', '.join(bad)} (choose from {', '.join(ALL_OPS)})")
        watch_cases = (
            cases(args.watchers, args.watch_puts, args.watch_rate) if "watch" in ops else []
        )
        if args.rounds < 1 or args.duration <= 0 or args.key_space < 1:
            raise ValueError("--rounds, --duration and --key-space must be positive")
        if any(int(n) < 1 for n in args.concurrency.split(",") if n.strip()):
            raise ValueError("--concurrency: every N must be >= 1")
        if args.cluster and (args.endpoint or args.etcd_endpoint or args.cluster < 1):
            raise ValueError("--cluster SIZE (>= 1) starts its own servers; no --endpoint")
        if args.against_etcd and not args.etcd_endpoint and not Path(args.etcd_binary).exists():
            raise ValueError(f"--against-etcd: no etcd binary at {args.etcd_binary}")
    except (ValueError, OSError) as error:
        print(f"cairn bench: {error}", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="cairn-bench-"))
    background = background_load()
    verdicts: dict[str, list[str]] = {}
    leaders: dict[str, str] = {}
    _progress(
        f"cairn bench: client {args.client_mode}, client processes {args.client_procs}, "
        f"{os.cpu_count()} cores ({background:.2f} busy before starting), data in {workdir}"
    )
    try:
        with contextlib.ExitStack() as stack:
            servers = []
            if args.cluster:
                cairn_cmd = [sys.executable, "-m", "cairn", "serve"]
                servers.append(
                    stack.enter_context(started_cluster("cairn", cairn_cmd, workdir, args.cluster))
                )
                if args.against_etcd:
                    servers.append(
                        stack.enter_context(
                            started_cluster("etcd", [args.etcd_binary], workdir, args.cluster)
                        )
                    )
                for server in servers:
                    leaders[server.name] = server.endpoint
                    _progress(
                        f"  {server.name}: {args.cluster} members {', '.join(server.members)}; "
                        f"leader (load target) {server.endpoint}, pid {server.pid}"
                    )
            else:
                servers = [
                    existing_server("cairn", args.endpoint, args.endpoint_pid)
                    if args.endpoint
                    else stack.enter_context(
                        started_server("cairn", [sys.executable, "-m", "cairn", "serve"], workdir)
                    )
                ]
                if args.against_etcd:
                    servers.append(
                        existing_server("etcd", args.etcd_endpoint, None)
                        if args.etcd_endpoint
                        else stack.enter_context(
                            started_server("etcd", [args.etcd_binary], workdir)
                        )
                    )
            results = bench_servers(servers, args)
            watch_results = bench_watch(servers, watch_cases, args.duration, _progress)
            if args.cluster and args.check_perf_load:
                for server in servers:
                    _progress(f"  {server.name}: etcdctl check perf --load={args.check_perf_load}")
                    verdicts[server.name] = check_perf(
                        server, args.check_perf_load, args.check_perf_timeout
                    )
                    for line in verdicts[server.name]:
                        _progress(f"    {line}")
    except RuntimeError as error:
        print(f"cairn bench: {error}", file=sys.stderr)
        return 1
    finally:
        if args.keep_data:
            _progress(f"cairn bench: data and server logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    cairn_results = results["cairn"]
    etcd_results = results.get("etcd", [])
    failed = [r for r in cairn_results + etcd_results if r.requests == 0]
    failed_watch = [r for r in watch_results if r.delivered == 0]

    if cairn_results:
        _print_kv(args, cairn_results, etcd_results, leaders)
    if watch_results:
        _print_watch(watch_results, leaders)
    background_after = background_load()
    print(
        f"Background load (cores busy while the bench was idle): {background:.2f} before, "
        f"{background_after:.2f} after, of {os.cpu_count()}."
        + (
            " The machine is shared: treat absolute numbers with care; the cairn and etcd runs "
            "were interleaved so the noise hits both."
            if max(background, background_after) >= 0.25
            else ""
        )
    )
    if verdicts:
        print()
        for name, lines in verdicts.items():
            print(f"etcdctl check perf --load={args.check_perf_load} against {name} (all members):")
            for line in lines:
                print(f"  {line}")
    goals = targets(cairn_results, etcd_results, cluster=bool(args.cluster))
    if goals:
        print()
        for name, goal in goals.items():
            verdict = "met" if goal["met"] else "MISSED"
            print(f"target {name}: {fmt(goal['value'], '.3f')} (want {goal['target']}): {verdict}")
    if args.json_path:
        document = {
            "config": {k: v for k, v in vars(args).items() if k != "func" and not callable(v)},
            "machine": {
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "background_cores_before": background,
                "background_cores_after": background_after,
            },
            "results": [
                {**asdict(r), "client_bound": r.client_bound, "other_cores": r.other_cores}
                for r in cairn_results + etcd_results
            ],
            "watch": [{**asdict(r), "other_cores": r.other_cores} for r in watch_results],
            "targets": goals,
            "leaders": leaders,
            "check_perf": verdicts,
        }
        Path(args.json_path).write_text(json.dumps(document, indent=2) + "\n")
        _progress(f"cairn bench: results written to {args.json_path}")
    if failed or failed_watch:
        print(
            f"cairn bench: {len(failed) + len(failed_watch)} run(s) completed nothing; "
            "see the errors above",
            file=sys.stderr,
        )
        return 1
    return 0


def _print_kv(
    args: argparse.Namespace,
    cairn_results: list[RunResult],
    etcd_results: list[RunResult],
    leaders: dict[str, str],
) -> None:
    """The put/range table and where the CPU went in each run."""
    print()
    print(
        f"Put and linearizable Range, {args.value_size}-byte values, {args.key_space} keys; "
        f"client: KVStub over {'grpc.aio' if args.client_mode == 'aio' else 'sync gRPC threads'}"
        f", N in-flight requests spread over client processes. Ratios are cairn/etcd "
        f"(ops/s: higher is better for cairn; latency: lower is better)."
    )
    if args.cluster:
        print(
            f"Cluster mode: {args.cluster}-member clusters on loopback; the load went to each "
            "cluster's leader: "
            + ", ".join(f"{name} {endpoint}" for name, endpoint in leaders.items())
            + ". Server CPU below is the leader's process only."
        )
    print(render_table(cairn_results, etcd_results))
    print()
    print("CPU during each measurement (cores = CPU-seconds per wall second):")
    print(render_cpu(cairn_results + etcd_results))


def _print_watch(results: list[WatchResult], leaders: dict[str, str]) -> None:
    """The watch table; errors (undelivered events, failed streams) follow it, one per run."""
    print()
    print(
        "Watch delivery: W watchers of one prefix (100 per Watch stream) under a steady put "
        "rate, every put carrying its send time; events/s = events received / (first put to "
        "last event); lag = receive time - send time; deliv = share of W x puts events "
        "received. One asyncio client process runs watchers and writer. Ratios are cairn/etcd."
    )
    if leaders:
        print(
            "Cluster mode: watchers and puts went to each cluster's leader: "
            + ", ".join(f"{name} {endpoint}" for name, endpoint in leaders.items())
            + ". Server CPU below is the leader's process only."
        )
    print(
        render_watch_table(
            [r for r in results if r.server == "cairn"], [r for r in results if r.server == "etcd"]
        )
    )
    print(
        "CPU during each case (cores = CPU-seconds per wall second; other = neither bench nor server):"
    )
    for r in results:
        print(
            f"  {r.server:5s} W={r.watchers:<5d} client {r.client_cpu_cores:.2f} server "
            f"{fmt(r.server_cpu_cores, '.2f')} other {fmt(r.other_cores, '.2f')} machine "
            f"{r.machine_busy_cores:.2f} cores" + (f"  ERROR {r.error}" if r.error else "")
        )
