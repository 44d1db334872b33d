"""Fixtures shared by the test suites."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from tests.support.etcdctl import etcdctl_path
from tests.support.servers import ServerKind, ServerProcess, etcd_path, start_server


@pytest.fixture
def etcd_binaries() -> None:
    """Skip the test unless the real etcd server and etcdctl are installed."""
    missing = [
        name for name, path in (("etcd", etcd_path()), ("etcdctl", etcdctl_path())) if not path
    ]
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not installed (Debian packages etcd-server, etcd-client)"
        )


ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers in this test's tmp dir: `server_factory("etcd", extra_args=[...])`.

    Every server started through it is stopped (SIGTERM, then SIGKILL) at teardown.
    """
    started: list[ServerProcess] = []
    numbers = itertools.count()

    def factory(kind: ServerKind, *, extra_args: Sequence[str] = (), timeout: float = 30.0):
        base = tmp_path / f"{kind}-{next(numbers)}"
        server = start_server(kind, base, extra_args=extra_args, timeout=timeout)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
