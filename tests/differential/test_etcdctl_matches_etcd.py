"""Unmodified etcdctl 3.4 must behave against cairn exactly as against etcd.

Each scenario runs on a fresh etcd and a fresh target server (cairn by default; another etcd
with CAIRN_DIFF_TARGET=etcd, which checks the harness itself: masking and determinism).
Every step must give the same exit code, stdout and stderr after masking.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.conftest import ServerFactory
from tests.differential.runner import (
    Scenario,
    Side,
    format_mismatches,
    run_scenario,
    target_kind,
)
from tests.differential.scenarios import SCENARIOS

pytestmark = [pytest.mark.slow, pytest.mark.etcd, pytest.mark.usefixtures("etcd_binaries")]


def _cases() -> list[object]:
    """Scenarios that need a feature cairn has not built yet must fail (strict xfail), so the
    mark has to be removed the moment that feature lands."""
    cases: list[object] = []
    for s in SCENARIOS:
        marks = []
        if s.pending and target_kind() == "cairn":
            marks.append(pytest.mark.xfail(strict=True, reason=s.pending))
        cases.append(pytest.param(s, id=s.name, marks=marks))
    return cases


@pytest.mark.parametrize("scenario", _cases())
def test_etcdctl_output_matches_etcd(scenario: Scenario, server_factory: ServerFactory) -> None:
    kind = target_kind()
    with ThreadPoolExecutor(max_workers=2) as pool:
        ref_future = pool.submit(server_factory, "etcd", extra_args=scenario.server_args)
        tgt_future = pool.submit(server_factory, kind, extra_args=scenario.server_args)
        reference_server, target_server = ref_future.result(), tgt_future.result()
    reference = Side("etcd", reference_server)
    target = Side("cairn" if kind == "cairn" else "etcd#2", target_server)

    mismatches = run_scenario(scenario, reference, target)

    if mismatches:
        pytest.fail(format_mismatches(scenario, mismatches, reference, target), pytrace=False)
