"""`cairn bench`: Put and linearizable Range throughput/latency, optionally next to a real etcd.

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
import asyncio
import contextlib
import ipaddress
import json
import math
import multiprocessing as mp
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from cairn.cli.config import single_member_flags

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
        help="comma-separated operations to measure (put, range); default: both",
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


# ---- the load, run inside client worker processes ----------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
    """What one client process does: its share of the in-flight requests and of the count."""

    endpoint: str
    op: str
    concurrency: int
    requests: int
    warmup: int
    key_space: int
    value_size: int
    duration_s: float
    seed: int
    mode: str
    sequential_keys: bool = False  # preload: every key once, in order


@dataclass
class WorkerResult:
    latencies: list[float] = field(default_factory=list)  # seconds, measured requests only
    start: float = 0.0  # time.monotonic(): one clock for every process on the machine
    end: float = 0.0
    cpu_s: float = 0.0  # user + system CPU of the worker process while measuring
    errors: int = 0
    first_error: str = ""


def _key(index: int) -> bytes:
    return KEY_PREFIX + b"%08d" % index


class _Load:
    """Hands out request indices to the concurrent callers of one worker until done or late."""

    def __init__(self, spec: WorkerSpec, requests: list[Any], count: int, deadline: float) -> None:
        self.remaining = count
        self.deadline = deadline
        self.lock = threading.Lock()
        self.result = WorkerResult()
        self.requests = requests
        self._rng = random.Random(spec.seed)
        self._spec = spec
        self._next_sequential = spec.seed  # preload workers start at their own offset

    def take(self) -> Any | None:
        """The next request to send, or None when the count or the time is used up."""
        with self.lock:
            if self.remaining <= 0 or time.monotonic() > self.deadline:
                return None
            self.remaining -= 1
            if self._spec.sequential_keys:
                index = self._next_sequential % self._spec.key_space
                self._next_sequential += 1
            else:
                index = self._rng.randrange(self._spec.key_space)
        return self.requests[index]

    def record(self, latency: float | None, error: Exception | None) -> None:
        with self.lock:  # only contended in threads mode
            if error is None:
                self.result.latencies.append(latency or 0.0)
                return
            self.result.errors += 1
            if not self.result.first_error:
                self.result.first_error = f"{type(error).__name__}: {error}"[:500]


def _build_requests(spec: WorkerSpec) -> list[Any]:
    """One request per key, built before the clock starts so the client spends its measured
    CPU on gRPC rather than on protobuf construction."""
    from cairn.proto import rpc_pb2 as pb

    if spec.op == "put":
        value = random.Random(spec.seed).randbytes(spec.value_size)
        return [pb.PutRequest(key=_key(i), value=value) for i in range(spec.key_space)]
    return [pb.RangeRequest(key=_key(i)) for i in range(spec.key_space)]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _aio_phase(
    stub: Any, spec: WorkerSpec, requests: list[Any], count: int, deadline: float
) -> _Load:
    load = _Load(spec, requests, count, deadline)
    call = stub.Put if spec.op == "put" else stub.Range

    async def caller() -> None:
        while (request := load.take()) is not None:
            started = time.perf_counter()
            try:
                await call(request, timeout=RPC_TIMEOUT_S)
            except Exception as error:
                load.record(None, error)
            else:
                load.record(time.perf_counter() - started, None)

    await asyncio.gather(*(caller() for _ in range(spec.concurrency)))
    return load


async def _aio_worker(spec: WorkerSpec, barrier: Barrier) -> WorkerResult:
    import grpc

    from cairn.proto.rpc_pb2_grpc import KVStub

    async with grpc.aio.insecure_channel(spec.endpoint) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=RPC_TIMEOUT_S)
        stub = KVStub(channel)
        requests = _build_requests(spec)
        await _aio_phase(stub, spec, requests, spec.warmup, time.monotonic() + spec.duration_s)
        barrier.wait(timeout=spec.duration_s + 60)
        cpu = _cpu_seconds()
        start = time.monotonic()
        load = await _aio_phase(stub, spec, requests, spec.requests, start + spec.duration_s)
        load.result.end = time.monotonic()
        load.result.cpu_s = _cpu_seconds() - cpu
        load.result.start = start
        return load.result


def _threads_phase(
    stub: Any, spec: WorkerSpec, requests: list[Any], count: int, deadline: float
) -> _Load:
    load = _Load(spec, requests, count, deadline)
    call = stub.Put if spec.op == "put" else stub.Range

    def caller() -> None:
        while (request := load.take()) is not None:
            started = time.perf_counter()
            try:
                call(request, timeout=RPC_TIMEOUT_S)
            except Exception as error:
                load.record(None, error)
            else:
                load.record(time.perf_counter() - started, None)

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(spec.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return load


def _threads_worker(spec: WorkerSpec, barrier: Barrier) -> WorkerResult:
    import grpc

    from cairn.proto.rpc_pb2_grpc import KVStub

    with grpc.insecure_channel(spec.endpoint) as channel:
        grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
        stub = KVStub(channel)
        requests = _build_requests(spec)
        _threads_phase(stub, spec, requests, spec.warmup, time.monotonic() + spec.duration_s)
        barrier.wait(timeout=spec.duration_s + 60)
        cpu = _cpu_seconds()
        start = time.monotonic()
        load = _threads_phase(stub, spec, requests, spec.requests, start + spec.duration_s)
        load.result.end = time.monotonic()
        load.result.cpu_s = _cpu_seconds() - cpu
        load.result.start = start
        return load.result


def _worker_main(spec: WorkerSpec, barrier: Barrier, results: Any) -> None:
    """Entry point of a client process (spawned, so no gRPC state is inherited by fork)."""
    try:
        if spec.mode == "aio":
            result = asyncio.run(_aio_worker(spec, barrier))
        else:
            result = _threads_worker(spec, barrier)
    except BaseException as error:  # report, never hang the parent
        with contextlib.suppress(Exception):
            barrier.abort()
        result = WorkerResult(errors=1, first_error=f"worker failed: {error!r}"[:500])
    results.put(asdict(result))


# ---- one measured run: N in-flight requests of one op, spread over client processes -------


@dataclass
class RunResult:
    server: str
    op: str
    concurrency: int
    client_procs: int
    client_mode: str
    requests: int  # completed, measured
    errors: int
    wall_s: float
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    client_cpu_cores: float  # all client processes together
    client_max_proc_cpu: float  # the busiest client process, 1.0 = a full core
    server_cpu_cores: float | None  # None when the server is not ours to watch
    machine_busy_cores: float
    first_error: str = ""

    @property
    def client_bound(self) -> bool:
        return self.client_max_proc_cpu >= CLIENT_SATURATED

    @property
    def other_cores(self) -> float | None:
        """CPU used by neither the bench nor the server (other work on a shared machine)."""
        if self.server_cpu_cores is None:
            return None
        return max(0.0, self.machine_busy_cores - self.client_cpu_cores - self.server_cpu_cores)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def split(total: int, parts: int) -> list[int]:
    """`total` spread over `parts` as evenly as integers allow, larger shares first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads) from /proc, or None if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU-seconds all cores spent not idle since boot (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def background_load(seconds: float = 1.0) -> float:
    """Cores busy while the bench itself is idle: other work sharing the machine."""
    before = _machine_busy_seconds()
    time.sleep(seconds)
    return (_machine_busy_seconds() - before) / seconds


def run_load(
    server: Server,
    op: str,
    concurrency: int,
    args: argparse.Namespace,
    *,
    requests: int,
    warmup: int,
    procs: int,
    sequential_keys: bool = False,
) -> RunResult:
    """Start the client processes, release them together, and combine what they measured."""
    server_pid = server.pid
    ctx = mp.get_context("spawn")
    procs = max(1, min(procs, concurrency))
    barrier = ctx.Barrier(procs + 1)
    results = ctx.Queue()
    shares = split(concurrency, procs)
    counts = split(requests, procs)
    warmups = split(warmup, procs)
    workers = []
    for i in range(procs):
        spec = WorkerSpec(
            endpoint=server.endpoint,
            op=op,
            concurrency=shares[i],
            requests=counts[i],
            warmup=warmups[i],
            key_space=args.key_space,
            value_size=args.value_size,
            duration_s=args.duration,
            # Preload workers start at spread-out keys; measured workers get their own stream.
            seed=(i * args.key_space // procs) if sequential_keys else args.seed * 1000 + i,
            mode=args.client_mode,
            sequential_keys=sequential_keys,
        )
        worker = ctx.Process(target=_worker_main, args=(spec, barrier, results), daemon=True)
        worker.start()
        workers.append(worker)
    limit = time.monotonic() + 2 * args.duration + 120  # warm-up + run + spawning
    server_cpu0 = machine0 = window0 = 0.0
    try:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=args.duration + 90)
        window0 = time.monotonic()
        server_cpu0 = (_proc_cpu_seconds(server_pid) or 0.0) if server_pid else 0.0
        machine0 = _machine_busy_seconds()
        collected: list[WorkerResult] = []
        while len(collected) < procs and time.monotonic() < limit:
            try:
                collected.append(WorkerResult(**results.get(timeout=1.0)))
            except Exception:
                if not any(w.is_alive() for w in workers) and results.empty():
                    break
        machine1 = _machine_busy_seconds()
        server_cpu1 = (_proc_cpu_seconds(server_pid) or 0.0) if server_pid else 0.0
        # The server and machine counters cover this window, not the workers' own.
        window = max(time.monotonic() - window0, 1e-9)
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)
    latencies = sorted(lat for r in collected for lat in r.latencies)
    measured = [r for r in collected if r.end > 0]
    wall = (
        max(r.end for r in measured) - min(r.start for r in measured) if measured else 0.0
    ) or 1e-9
    errors = sum(r.errors for r in collected) + (procs - len(collected))
    first_error = next((r.first_error for r in collected if r.first_error), "")
    if len(collected) < procs and not first_error:
        first_error = f"{procs - len(collected)} client process(es) did not report in time"
    return RunResult(
        server=server.name,
        op=op,
        concurrency=concurrency,
        client_procs=procs,
        client_mode=args.client_mode,
        requests=len(latencies),
        errors=errors,
        wall_s=wall,
        ops_per_s=len(latencies) / wall,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        mean_ms=(sum(latencies) / len(latencies) * 1000) if latencies else 0.0,
        client_cpu_cores=sum(r.cpu_s for r in measured) / wall,
        client_max_proc_cpu=max((r.cpu_s / wall for r in measured), default=0.0),
        server_cpu_cores=(server_cpu1 - server_cpu0) / window if server_pid else None,
        machine_busy_cores=(machine1 - machine0) / window,
        first_error=first_error,
    )


# ---- servers -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_loopback(endpoint: str) -> str:
    """Accept HOST:PORT only when every address HOST resolves to is loopback."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--endpoint {endpoint!r}: expected HOST:PORT")
    host = host.strip("[]")
    infos = socket.getaddrinfo(host, int(port), proto=socket.IPPROTO_TCP)
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise ValueError(f"--endpoint {endpoint!r}: the bench only talks to loopback addresses")
    return endpoint


@dataclass
class Server:
    """A server process this bench started, and where it writes its data and log."""

    name: str
    endpoint: str
    process: subprocess.Popen[bytes] | None
    log_path: Path | None
    known_pid: int | None = None  # for a server we did not start (--endpoint-pid)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else self.known_pid


def _server_flags(name: str, data_dir: Path) -> tuple[list[str], str]:
    client_port, peer_port = _free_port(), _free_port()
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    flags = [*single_member_flags(name, str(data_dir), client, peer), "--log-level=warn"]
    return flags, f"127.0.0.1:{client_port}"


def _wait_ready(server: Server, timeout: float = 30.0) -> None:
    """Wait until a linearizable Range succeeds, i.e. the member has a leader and serves."""
    import grpc

    from cairn.proto import rpc_pb2 as pb
    from cairn.proto.rpc_pb2_grpc import KVStub

    deadline = time.monotonic() + timeout
    last: grpc.RpcError | None = None
    with grpc.insecure_channel(server.endpoint) as channel:
        stub = KVStub(channel)
        while time.monotonic() < deadline:
            if server.process is not None and server.process.poll() is not None:
                break
            try:
                stub.Range(pb.RangeRequest(key=b"/cairn-bench-ready"), timeout=2.0)
                return
            except grpc.RpcError as error:
                last = error
                time.sleep(0.1)
    reason = f"{last.code().name}: {last.details()}" if isinstance(last, grpc.Call) else "exited"
    tail = ""
    if server.log_path is not None and server.log_path.exists():
        tail = "\n".join(server.log_path.read_text(errors="replace").splitlines()[-20:])
    raise RuntimeError(f"{server.name} at {server.endpoint} did not become ready: {reason}\n{tail}")


def _existing(name: str, endpoint: str, pid: int | None) -> Server:
    """A server someone else runs; checked to answer before any load is sent."""
    server = Server(name, endpoint, None, None, pid)
    _wait_ready(server, timeout=10.0)
    return server


@contextlib.contextmanager
def started_server(name: str, command: list[str], workdir: Path) -> Iterator[Server]:
    """Start a fresh server in `workdir`, yield it once it serves, and always stop it."""
    data_dir = workdir / f"{name}.data"
    flags, endpoint = _server_flags(name, data_dir)
    extra = ["--logger=zap"] if name == "etcd" else []
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, *flags, *extra],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the bench, which then stops the server
        )
    server = Server(name, endpoint, process, log_path)
    try:
        _wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


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
    ops = [op.strip() for op in args.ops.split(",") if op.strip()]
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
        f"server {_fmt(r.server_cpu_cores, '.2f')} machine {r.machine_busy_cores:.2f} cores"
    )
    if r.errors:
        line += f"  ERRORS {r.errors}: {r.first_error}"
    return line


def _fmt(value: float | None, spec: str) -> str:
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
                f" | {_fmt(_ratio(r.ops_per_s, e.ops_per_s), '8.2f')}"
                f" {_fmt(_ratio(r.p50_ms, e.p50_ms), '7.2f')}"
                f" {_fmt(_ratio(r.p99_ms, e.p99_ms), '7.2f')}"
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
            f"{_fmt(r.server_cpu_cores, '7.2f'):>7s} {_fmt(r.other_cores, '7.2f'):>7s} "
            f"{r.machine_busy_cores:7.2f}  {verdict(r, cores)}"
        )
    return "\n".join(lines)


def targets(cairn: list[RunResult], etcd: list[RunResult]) -> dict[str, Any]:
    """The issue's targets, evaluated where both sides were measured."""
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
    if ("put", 1) in c and ("put", 1) in e:
        ratio = _ratio(c["put", 1].p50_ms, e["put", 1].p50_ms)
        out["put_latency_n1_p50_ratio"] = {
            "value": ratio,
            "target": f"<= {TARGET_PUT_LATENCY_RATIO}",
            "met": ratio is not None and ratio <= TARGET_PUT_LATENCY_RATIO,
        }
    return out


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
        bad = [op for op in args.ops.split(",") if op.strip() and op.strip() not in OPS]
        if bad:
            raise ValueError(f"--ops: unknown {', '.join(bad)} (choose from {', '.join(OPS)})")
        if args.rounds < 1 or args.duration <= 0 or args.key_space < 1:
            raise ValueError("--rounds, --duration and --key-space must be positive")
        if any(int(n) < 1 for n in args.concurrency.split(",") if n.strip()):
            raise ValueError("--concurrency: every N must be >= 1")
        if args.against_etcd and not args.etcd_endpoint and not Path(args.etcd_binary).exists():
            raise ValueError(f"--against-etcd: no etcd binary at {args.etcd_binary}")
    except (ValueError, OSError) as error:
        print(f"cairn bench: {error}", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="cairn-bench-"))
    background = background_load()
    _progress(
        f"cairn bench: client {args.client_mode}, client processes {args.client_procs}, "
        f"{os.cpu_count()} cores ({background:.2f} busy before starting), data in {workdir}"
    )
    try:
        with contextlib.ExitStack() as stack:
            servers = [
                _existing("cairn", args.endpoint, args.endpoint_pid)
                if args.endpoint
                else stack.enter_context(
                    started_server("cairn", [sys.executable, "-m", "cairn", "serve"], workdir)
                )
            ]
            if args.against_etcd:
                servers.append(
                    _existing("etcd", args.etcd_endpoint, None)
                    if args.etcd_endpoint
                    else stack.enter_context(started_server("etcd", [args.etcd_binary], workdir))
                )
            results = bench_servers(servers, args)
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

    print()
    print(
        f"Put and linearizable Range, {args.value_size}-byte values, {args.key_space} keys; "
        f"client: KVStub over {'grpc.aio' if args.client_mode == 'aio' else 'sync gRPC threads'}"
        f", N in-flight requests spread over client processes. Ratios are cairn/etcd "
        f"(ops/s: higher is better for cairn; latency: lower is better)."
    )
    print(render_table(cairn_results, etcd_results))
    print()
    print("CPU during each measurement (cores = CPU-seconds per wall second):")
    print(render_cpu(cairn_results + etcd_results))
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
    goals = targets(cairn_results, etcd_results)
    if goals:
        print()
        for name, goal in goals.items():
            verdict = "met" if goal["met"] else "MISSED"
            print(f"target {name}: {_fmt(goal['value'], '.3f')} (want {goal['target']}): {verdict}")
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
            "targets": goals,
        }
        Path(args.json_path).write_text(json.dumps(document, indent=2) + "\n")
        _progress(f"cairn bench: results written to {args.json_path}")
    if failed:
        print(
            f"cairn bench: {len(failed)} run(s) completed no request; see the errors above",
            file=sys.stderr,
        )
        return 1
    return 0
