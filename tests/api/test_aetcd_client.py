"""The `aetcd` asyncio client (PyPI), unmodified, against a real `cairn serve` process: put,
get, transaction, leases (grant, attach, refresh, info with keys, revoke) and watch (from a past revision with prev_kv, on a prefix filtered to
deletes, from a compacted revision) and aetcd's lock (its own recipe on leases, txn and
watch) behave as aetcd's users expect from etcd.

Each check runs in a process of its own (tests/api/aetcd_checks.py): aetcd's generated
protos use etcd's package names, which clash with cairn's in one protobuf descriptor pool.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.servers import start_server

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

CHECKS = (
    "put_get_and_a_transaction",
    "watch_a_key_from_a_past_revision_then_live",
    "watch_prefix_filtered_to_deletes",
    "watch_from_a_compacted_revision_raises",
    "lock_excludes_a_second_holder_until_released",
    "lease_grant_attach_refresh_info_and_revoke",
)


@pytest.fixture(scope="module")
def client_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    server = start_server("cairn", tmp_path_factory.mktemp("aetcd") / "cairn")
    yield server.client_port
    server.stop()


@pytest.mark.parametrize("check", CHECKS)
def test_aetcd_against_cairn(check: str, client_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.api.aetcd_checks", str(client_port), check],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
