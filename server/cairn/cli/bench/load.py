"""The load: client worker processes driving N in-flight requests of one operation."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import random
import resource
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from cairn.cli.bench.servers import Server

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


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads) from /proc, or None if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU-seconds all cores spent not idle since boot (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def background_load(seconds: float = 1.0) -> float:
    """Cores busy while the bench itself is idle: other work sharing the machine."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / seconds


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
        server_cpu0 = (proc_cpu_seconds(server_pid) or 0.0) if server_pid else 0.0
        machine0 = machine_busy_seconds()
        collected: list[WorkerResult] = []
        while len(collected) < procs and time.monotonic() < limit:
            try:
                collected.append(WorkerResult(**results.get(timeout=1.0)))
            except Exception:
                if not any(w.is_alive() for w in workers) and results.empty():
                    break
        machine1 = machine_busy_seconds()
        server_cpu1 = (proc_cpu_seconds(server_pid) or 0.0) if server_pid else 0.0
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
