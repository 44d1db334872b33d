"""The member table: seeded from --initial-cluster once, changed only by applied publishes,
and written in the same LevelDB batch as the applied index that covers the publish."""

from __future__ import annotations

from pathlib import Path

from cairn.member.identity import member_id
from cairn.member.membership import Membership
from cairn.mvcc.backend import Backend
from cairn.mvcc.store import MVCCStore
from cairn.proto.internal_pb2 import MemberAttributesRequest

INITIAL = {"a": ["http://10.0.0.1:2380"], "b": ["http://10.0.0.2:2380"]}
TOKEN = "tok"
A = member_id(INITIAL["a"], TOKEN)


def open_table(path: Path, initial: dict[str, list[str]] = INITIAL) -> tuple[Backend, Membership]:
    backend = Backend(str(path))
    return backend, Membership.open(MVCCStore(backend), initial, TOKEN)


def publish_a(table: Membership) -> None:
    table.apply_attributes(
        MemberAttributesRequest(member_ID=A, name="a", client_urls=["http://10.0.0.1:2379"])
    )


def test_founders_are_listed_by_id_with_names_and_no_client_urls(tmp_path: Path) -> None:
    backend, table = open_table(tmp_path)
    members = table.members()
    backend.close()
    assert [m.ID for m in members] == sorted(member_id(u, TOKEN) for u in INITIAL.values())
    assert {m.name: list(m.peerURLs) for m in members} == INITIAL
    assert all(not m.clientURLs and not m.isLearner for m in members)


def test_a_publish_is_persisted_only_by_the_flush_that_records_its_index(tmp_path: Path) -> None:
    backend, table = open_table(tmp_path)
    publish_a(table)
    assert list(table.get(A).clientURLs) == ["http://10.0.0.1:2379"]  # type: ignore[union-attr]
    backend.close()  # no flush: as if the member crashed before the batch was written
    backend = Backend(str(tmp_path))
    store = MVCCStore(backend)
    table = Membership.open(store, INITIAL, TOKEN)
    assert not table.get(A).clientURLs  # type: ignore[union-attr]
    publish_a(table)
    store.flush(applied_index=7)
    backend.close()
    backend, table = open_table(tmp_path)
    assert list(table.get(A).clientURLs) == ["http://10.0.0.1:2379"]  # type: ignore[union-attr]
    assert MVCCStore(backend).applied_index == 7
    backend.close()


def test_a_stored_table_wins_over_a_changed_initial_cluster(tmp_path: Path) -> None:
    backend, _ = open_table(tmp_path)
    backend.close()
    backend, table = open_table(tmp_path, {"z": ["http://10.9.9.9:2380"]})
    names = [m.name for m in table.members()]
    backend.close()
    assert sorted(names) == ["a", "b"]


def test_a_publish_from_an_unknown_member_is_ignored(tmp_path: Path) -> None:
    backend, table = open_table(tmp_path)
    table.apply_attributes(MemberAttributesRequest(member_ID=12345, name="ghost"))
    ids = [m.ID for m in table.members()]
    backend.close()
    assert 12345 not in ids and len(ids) == 2
