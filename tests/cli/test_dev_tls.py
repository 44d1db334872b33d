"""`cairn dev` (`make cluster`): by default a local cluster that etcdctl reaches only with the
certificates and flags it prints."""

from __future__ import annotations

import re
import shlex
import shutil
import time
from pathlib import Path

import pytest
from tests.support.dev_cluster import free_base_port, running_dev
from tests.support.etcdctl import EXIT_SUCCESS, run_etcdctl
from tests.support.tls import CTL_TIMEOUTS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(shutil.which("etcdctl") is None, reason="needs etcdctl"),
]


def test_dev_tls_prints_etcdctl_flags_that_work_and_plaintext_is_refused(tmp_path: Path) -> None:
    port = free_base_port()
    with running_dev(tmp_path / "c", port) as banner:
        match = re.search(r"etcdctl (--cacert=\S+ --cert=\S+ --key=\S+) --endpoints", banner)
        assert match, banner
        flags = [*shlex.split(match.group(1)), *CTL_TIMEOUTS]
        assert f"https://127.0.0.1:{port}" in banner
        deadline = time.monotonic() + 20
        put = run_etcdctl(f"127.0.0.1:{port}", ["put", "k", "v"], extra_global_flags=flags)
        while put.returncode != EXIT_SUCCESS and time.monotonic() < deadline:
            time.sleep(0.2)
            put = run_etcdctl(f"127.0.0.1:{port}", ["put", "k", "v"], extra_global_flags=flags)
        assert put.returncode == EXIT_SUCCESS, put
        plain = run_etcdctl(f"127.0.0.1:{port}", ["get", "k"], extra_global_flags=CTL_TIMEOUTS)
        assert plain.returncode != EXIT_SUCCESS
        assert (tmp_path / "c" / "pki" / "clients" / "admin.key").stat().st_mode & 0o077 == 0
