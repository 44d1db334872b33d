"""Seeded simulation runs (see sim.py for the fault model and the invariants checked).

`-m "not slow"` runs FAST_SEEDS seeds (plus the fixed-scenario runs below); `-m slow` runs
SLOW_SEEDS other seeds with shorter histories. A failure names its
seed; `RAFT_SEED=1234 pytest tests/raft -k sim` reruns just that one (in both suites' slot),
and `RAFT_SIM_SEEDS=5000` changes the size of the slow suite.
"""

from __future__ import annotations

import os

import pytest
from tests.raft.sim import Sim, SimParams, run_seed

FAST_SEEDS = 300
SLOW_SEEDS = int(os.environ.get("RAFT_SIM_SEEDS", "3000"))
SLOW_TICKS = 200  # shorter histories, more of them

_only = os.environ.get("RAFT_SEED")
fast_seeds = [int(_only)] if _only else list(range(FAST_SEEDS))
slow_seeds = [int(_only)] if _only else list(range(100_000, 100_000 + SLOW_SEEDS))


@pytest.mark.parametrize("seed", fast_seeds)
def test_sim_random_faults(seed: int) -> None:
    run_seed(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", slow_seeds)
def test_sim_random_faults_slow(seed: int) -> None:
    run_seed(seed, ticks=SLOW_TICKS)


def test_sim_is_deterministic_per_seed() -> None:
    a, b = run_seed(42), run_seed(42)
    assert a.committed == b.committed
    assert a.acked == b.acked and a.reads_served == b.reads_served


def test_sim_exercises_faults_and_reads() -> None:
    """Guard against a harness that silently stopped doing anything interesting."""
    sims = [run_seed(seed) for seed in range(20)]
    assert sum(len(s.leaders) for s in sims) > 40  # many elections
    assert sum(s.reads_served for s in sims) > 200
    assert sum(len(s.acked) for s in sims) > 500
    for stat in ("snapshots_installed", "conf_changes", "timeout_now", "crashes", "partitions"):
        assert sum(s.stats[stat] for s in sims) > 5, stat


@pytest.mark.parametrize("seed", range(10))
def test_sim_harsh_network_five_nodes(seed: int) -> None:
    params = SimParams(
        n=5,
        loss=0.25,
        dup=0.1,
        max_delay=8,
        partition_rate=0.08,
        crash_rate=0.03,
        snapshot_every=10,
        max_inflight=2,
        propose_rate=2.0,
        read_rate=2.0,
    )
    Sim(seed, params).run()


@pytest.mark.parametrize("seed", range(30))
def test_sim_crash_heavy_tiny_appends(seed: int) -> None:
    """The figure-8 hunting ground: see SimParams.crash_heavy."""
    import random

    Sim(seed, SimParams.crash_heavy(random.Random(seed))).run()


@pytest.mark.parametrize("seed", range(10))
def test_sim_without_pre_vote_or_check_quorum(seed: int) -> None:
    params = SimParams(pre_vote=False, check_quorum=False, crash_rate=0.03, partition_rate=0.05)
    Sim(seed, params).run()


def _grant_any_vote(self, last_index, term):
    return True


def _quorum_of_anyone(self, ids):
    return True


def _heartbeat_commit_uncapped(self, ctx=b""):
    from cairn.raft.types import Message, MessageType

    for node_id in self.tracker.progress:
        if node_id != self.id:
            self.send(
                Message(
                    MessageType.HEARTBEAT,
                    to=node_id,
                    frm=self.id,
                    commit=self.log.committed,
                    context=ctx,
                )
            )


@pytest.mark.parametrize(
    ("target", "name", "bug"),
    [
        ("cairn.raft.log.RaftLog", "is_up_to_date", _grant_any_vote),
        ("cairn.raft.progress.ProgressTracker", "has_quorum", _quorum_of_anyone),
        ("cairn.raft.raft.Raft", "bcast_heartbeat", _heartbeat_commit_uncapped),
    ],
    ids=["vote-ignores-log", "read-without-quorum", "heartbeat-commit-uncapped"],
)
def test_sim_catches_injected_bugs(monkeypatch, target, name, bug) -> None:
    """The checker is only worth something if it fails on a broken core: each of these bugs
    is found within the first few seeds."""
    from tests.raft.sim import SafetyViolation

    monkeypatch.setattr(f"{target}.{name}", bug)
    for seed in range(10):
        try:
            run_seed(seed)
        except SafetyViolation:
            return
    pytest.fail(f"{name} bug went unnoticed for 10 seeds")
