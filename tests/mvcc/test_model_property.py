"""The real store, driven through validation and the Applier on LevelDB, answers every request
exactly as the reference model (tests/mvcc/model.py) does — responses and errors alike.

Random steps: puts (prev_kv, ignore_value, ignore_lease, unknown leases), deletes of single
keys, ranges and prefixes, txns (compares over keys and ranges, both branches, nested txns,
reads at past revisions), compactions (finished at once or left for a restart to finish),
ranges with every option at current, past, compacted and future revisions, flushes of the
staged group, and restarts that rebuild the store from disk. Keys come from a small alphabet
of prefixes of each other and binary bytes, so steps collide.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from tests.mvcc.harness import EVERYTHING, KV, MAX_TXN_OPS, prefix_end, range_request
from tests.mvcc.model import Model

from cairn.api.validation import check_delete_range, check_put, check_range, check_txn
from cairn.errors import EtcdError
from cairn.proto import rpc_pb2 as pb

R = pb.RangeRequest

KEYS = [b"\x00", b"a", b"a\x00", b"ab", b"abc", b"b", b"\xff", b"\xff\xff"]
VALUES = [b"", b"x", b"y", b"\x00", b"\xff"]

# ---- request strategies ----------------------------------------------------------------------


@st.composite
def key_ranges(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(key, range_end): a single key, a prefix, "everything from key", or any other bound."""
    key = draw(st.sampled_from(KEYS))
    end = draw(st.sampled_from([b"", b"", b"\x00", prefix_end(key), b"c", *KEYS]))
    return key, end


def revisions(current: int) -> st.SearchStrategy[int]:
    """0 (the current revision) or anything from 0 to one past the current revision."""
    return st.one_of(st.just(0), st.integers(0, current + 1))


@st.composite
def range_requests(draw: st.DrawFn, current: int) -> pb.RangeRequest:
    key, end = draw(key_ranges())
    fields: dict[str, object] = {
        "revision": draw(revisions(current)),
        "limit": draw(st.sampled_from([0, 0, 1, 2, 3])),
        "sort_order": draw(st.sampled_from([R.NONE, R.NONE, R.ASCEND, R.DESCEND])),
        "sort_target": draw(st.sampled_from([R.KEY, R.KEY, R.VERSION, R.CREATE, R.MOD, R.VALUE])),
        "keys_only": draw(st.booleans()),
        "count_only": draw(st.sampled_from([False, False, False, True])),
    }
    if draw(st.booleans()):
        for name in (
            "min_mod_revision",
            "max_mod_revision",
            "min_create_revision",
            "max_create_revision",
        ):
            fields[name] = draw(st.sampled_from([0, 0, *range(1, current + 2)]))
    return range_request(key, end, **fields)


@st.composite
def put_requests(draw: st.DrawFn) -> pb.PutRequest:
    ignore_value = draw(st.sampled_from([False] * 7 + [True]))
    return pb.PutRequest(
        key=draw(st.sampled_from(KEYS)),
        value=b"" if ignore_value else draw(st.sampled_from(VALUES)),
        prev_kv=draw(st.booleans()),
        ignore_value=ignore_value,
        ignore_lease=draw(st.sampled_from([False] * 7 + [True])),
        lease=draw(st.sampled_from([0] * 15 + [7])),  # 7 is never granted
    )


@st.composite
def delete_requests(draw: st.DrawFn) -> pb.DeleteRangeRequest:
    key, end = draw(key_ranges())
    return pb.DeleteRangeRequest(key=key, range_end=end, prev_kv=draw(st.booleans()))


@st.composite
def compares(draw: st.DrawFn, current: int) -> pb.Compare:
    key, end = draw(key_ranges())
    target = draw(st.sampled_from(list(pb.Compare.CompareTarget.values())))
    result = draw(st.sampled_from(list(pb.Compare.CompareResult.values())))
    c = pb.Compare(key=key, range_end=end, target=target, result=result)
    if target == pb.Compare.VALUE:
        c.value = draw(st.sampled_from(VALUES))
    elif target == pb.Compare.VERSION:
        c.version = draw(st.integers(0, 3))
    elif target == pb.Compare.CREATE:
        c.create_revision = draw(st.integers(0, current + 1))
    elif target == pb.Compare.MOD:
        c.mod_revision = draw(st.integers(0, current + 1))
    else:
        c.lease = draw(st.sampled_from([0, 0, 7]))
    return c


def request_ops(current: int, depth: int) -> st.SearchStrategy[pb.RequestOp]:
    leaf = st.one_of(
        put_requests().map(lambda r: pb.RequestOp(request_put=r)),
        delete_requests().map(lambda r: pb.RequestOp(request_delete_range=r)),
        range_requests(current).map(lambda r: pb.RequestOp(request_range=r)),
    )
    if depth == 0:
        return leaf
    nested = txn_requests(current, depth - 1).map(lambda r: pb.RequestOp(request_txn=r))
    return st.one_of(leaf, nested)


@st.composite
def txn_requests(draw: st.DrawFn, current: int, depth: int = 2) -> pb.TxnRequest:
    ops = request_ops(current, depth)
    return pb.TxnRequest(
        compare=draw(st.lists(compares(current), max_size=3)),
        success=draw(st.lists(ops, max_size=3)),
        failure=draw(st.lists(ops, max_size=3)),
    )


# ---- the machine -----------------------------------------------------------------------------

Outcome = object  # a response message, or ("error", class name, message)


def error_outcome(error: EtcdError) -> Outcome:
    """What a client can tell errors apart by: the status code and etcd's message."""
    return ("error", error.code, error.message)


def outcome(run: Callable[[], object]) -> Outcome:
    try:
        return run()
    except EtcdError as error:
        return error_outcome(error)


class StoreMatchesModel(RuleBasedStateMachine):
    base: Path | None = None  # where each run's LevelDB directory goes (None: the system temp)

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="store-", dir=self.base))
        self.kv = KV(self.directory / "db", autoflush=False)
        self.model = Model()

    def teardown(self) -> None:
        self.kv.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def agree(
        self,
        validate: Callable[[], None],
        model: Callable[[], object],
        real: Callable[[], object],
    ) -> None:
        """Both sides answer alike.

        Validation is cairn's own, not modelled: a request it refuses reaches neither side,
        and the real side (which validates too) must refuse it with the same error.
        """
        try:
            validate()
        except EtcdError as refused:
            event(f"refused by validation: {type(refused).__name__}")
            assert outcome(real) == error_outcome(refused)
            return
        try:
            expected = model()
        except EtcdError as error:
            event(f"error: {type(error).__name__}")
            expected = error_outcome(error)
        actual = outcome(real)
        if isinstance(actual, pb.TxnResponse):
            event(f"txn took the {'success' if actual.succeeded else 'failure'} branch")
        assert actual == expected

    # ---- writes ------------------------------------------------------------------------

    @rule(r=put_requests())
    def put(self, r: pb.PutRequest) -> None:
        self.agree(lambda: check_put(r), lambda: self.model.put(r), lambda: self.kv.put_request(r))

    @rule(r=delete_requests())
    def delete(self, r: pb.DeleteRangeRequest) -> None:
        self.agree(
            lambda: check_delete_range(r),
            lambda: self.model.delete_range(r),
            lambda: self.kv.delete_request(r),
        )

    @rule(data=st.data())
    def txn(self, data: st.DataObject) -> None:
        r = data.draw(txn_requests(self.model.revision), label="txn")
        self.agree(
            lambda: check_txn(r, MAX_TXN_OPS),
            lambda: self.model.txn(r),
            lambda: self.kv.txn_request(r),
        )

    @rule(data=st.data(), finish=st.booleans())
    def compact(self, data: st.DataObject, finish: bool) -> None:
        low = max(self.model.compacted, 0)
        revision = data.draw(
            st.one_of(
                st.integers(low, self.model.revision), st.integers(0, self.model.revision + 1)
            ),
            label="revision",
        )
        r = pb.CompactionRequest(revision=revision)
        self.agree(
            lambda: None,
            lambda: self.model.compaction(r),
            lambda: self.kv.compact(revision, finish=finish),
        )

    @rule()
    def finish_compactions(self) -> None:
        self.kv.finish_compactions()

    @rule()
    def flush(self) -> None:
        self.kv.flush()

    @rule()
    def restart(self) -> None:
        if self.kv.pending_compactions:
            event("restart with an unfinished compaction")
        self.kv.restart()

    # ---- reads -------------------------------------------------------------------------

    @rule(data=st.data())
    def range(self, data: st.DataObject) -> None:
        r = data.draw(range_requests(self.model.revision), label="range")
        self.agree(lambda: check_range(r), lambda: self.model.range(r), lambda: self.kv.range(r))

    @rule(data=st.data())
    def read_everything_in_the_past(self, data: st.DataObject) -> None:
        revision = data.draw(
            st.integers(max(self.model.compacted, 1), self.model.revision), label="revision"
        )
        r = range_request(*EVERYTHING, revision=revision)
        assert self.kv.range(r) == self.model.range(r)

    @invariant()
    def same_current_state(self) -> None:
        r = range_request(*EVERYTHING)
        assert self.kv.range(r) == self.model.range(r)
        assert self.kv.revision == self.model.revision


def machine_in(base: Path) -> type[StoreMatchesModel]:
    return type("StoreMatchesModel", (StoreMatchesModel,), {"base": base})


def test_store_matches_model(tmp_path: Path) -> None:
    run_state_machine_as_test(machine_in(tmp_path), settings=settings(deadline=None))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_store_matches_model_long(tmp_path: Path) -> None:
    """Longer runs, more of them: about three minutes."""
    run_state_machine_as_test(
        machine_in(tmp_path),
        settings=settings(max_examples=1000, stateful_step_count=100, deadline=None),
    )
