"""IDs of members added at run time: etcd's formula, with the Unix second of the add.

The founders' formula (no time) is covered where the founders' table is; here the point is
that a re-added peer URL never derives a removed member's ID again, and that the ID is the
one real etcd gives for the same add.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from tests.support.etcdctl import etcdctl_path, run_etcdctl
from tests.support.servers import etcd_path, free_port, start_server

from cairn.member.identity import member_id
from cairn.member.membership import added_member_id

URLS = ["http://10.0.0.4:2380", "http://10.0.0.4:12380"]
TOKEN = "etcd-cluster"
SECOND = 1_700_000_000


def test_the_add_second_is_hashed_after_the_sorted_urls_without_the_token() -> None:
    # etcd's MemberAdd hashes an empty cluster name, whatever --initial-cluster-token says.
    material = "http://10.0.0.4:12380http://10.0.0.4:2380" + "1700000000"
    expected = int.from_bytes(hashlib.sha1(material.encode()).digest()[:8], "big")
    assert added_member_id(URLS, clock=lambda: SECOND + 0.75) == expected


def test_the_same_urls_added_in_different_seconds_get_different_ids() -> None:
    first = added_member_id(URLS, clock=lambda: SECOND)
    again = added_member_id(URLS, clock=lambda: SECOND + 1)
    assert first != again


def test_the_same_urls_added_within_one_second_get_the_same_id() -> None:
    assert added_member_id(URLS, clock=lambda: SECOND) == added_member_id(
        list(reversed(URLS)), clock=lambda: SECOND + 0.999
    )


def test_an_added_member_never_gets_the_founder_id_of_its_urls() -> None:
    assert added_member_id(URLS, clock=lambda: SECOND) != member_id(URLS, TOKEN)


@pytest.mark.slow
@pytest.mark.etcd
@pytest.mark.skipif(etcd_path() is None or etcdctl_path() is None, reason="needs etcd and etcdctl")
def test_member_add_on_real_etcd_gives_the_id_derived_for_the_second_of_the_add(
    tmp_path: Path,
) -> None:
    etcd = start_server("etcd", tmp_path)
    try:
        url = f"http://127.0.0.1:{free_port()}"
        before = int(time.time())
        result = run_etcdctl(
            etcd.client_url,
            ["member", "add", "m2", f"--peer-urls={url}", "--learner", "-w", "json"],
        )
        after = int(time.time())
        assert result.returncode == 0, result.stderr
        etcd_id = json.loads(result.stdout)["member"]["ID"]
    finally:
        etcd.stop()
    candidates = {
        added_member_id([url], clock=lambda s=second: float(s))
        for second in range(before, after + 1)
    }
    assert etcd_id in candidates
