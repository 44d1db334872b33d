"""`etcdctl lease keep-alive <id>` (without --once) against etcd 3.4 and cairn.

It runs until killed, so it does not fit the scenario runner's steps: here it runs for a
fixed time on both servers at once, is stopped with SIGTERM, and what it printed until then
must be the same once the lease IDs (chosen by each server) are masked.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.conftest import ServerFactory
from tests.support.etcdctl import decode, etcdctl_path, run_etcdctl
from tests.support.servers import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.etcd, pytest.mark.usefixtures("etcd_binaries")]

_GRANTED = re.compile(r"lease ([0-9a-f]+) granted")


def keep_alive_for(server: ServerProcess, ttl: int, seconds: float) -> tuple[int, str, str]:
    """Grant a lease, run `lease keep-alive` on it for `seconds`, then SIGTERM it; returns
    (exit status, stdout, stderr) with the lease ID shown as <lease>."""
    granted = _GRANTED.search(run_etcdctl(server.client_url, ["lease", "grant", str(ttl)]).stdout)
    assert granted is not None
    lease = granted.group(1)
    binary = etcdctl_path()
    assert binary is not None
    proc = subprocess.Popen(
        [binary, f"--endpoints={server.client_url}", "lease", "keep-alive", lease],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    return proc.returncode, decode(out).replace(lease, "<lease>"), decode(err)


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [
        (600, 1.5),  # one answer at once; the next one is due after TTL/3
        (2, 2.0),  # etcd's clientv3 renews every TTL/3 s: about three answers
    ],
)
def test_lease_keep_alive_prints_the_same_answers(
    server_factory: ServerFactory, ttl: int, seconds: float
) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        servers = list(pool.map(server_factory, ("etcd", "cairn")))
        etcd, cairn = pool.map(lambda s: keep_alive_for(s, ttl, seconds), servers)
    assert etcd[1].startswith(f"lease <lease> keepalived with TTL({ttl})\n")
    if ttl == 600:
        assert cairn == etcd
    else:
        # The number of renewals in the window depends on timing; each line must match.
        assert cairn[0] == etcd[0]
        assert set(cairn[1].splitlines()) == set(etcd[1].splitlines())
