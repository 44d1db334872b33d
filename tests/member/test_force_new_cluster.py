"""--force-new-cluster's log surgery: who is removed, and the entries that remove them."""

from __future__ import annotations

from cairn.member.force_new_cluster import members_after_log, removal_entries
from cairn.raft import ConfChange, ConfChangeType, Entry, EntryKind


def _conf(index: int, kind: ConfChangeType, node: int) -> Entry:
    return Entry(index, 2, ConfChange(kind, node).encode(), EntryKind.CONF_CHANGE)


def test_members_are_the_table_changed_by_the_conf_changes_not_yet_applied() -> None:
    log = [
        _conf(5, ConfChangeType.REMOVE, 3),  # applied: already reflected in the table
        _conf(8, ConfChangeType.ADD_LEARNER, 9),
        Entry(9, 2, b"a put", EntryKind.NORMAL),
        _conf(10, ConfChangeType.REMOVE, 2),
    ]
    assert members_after_log({1, 2, 3}, log, applied_index=7) == {1, 3, 9}


def test_every_other_member_gets_one_remove_entry_after_the_log_in_the_current_term() -> None:
    entries = removal_entries(own_id=1, members={3, 1, 2}, last_index=41, term=7)
    assert [(e.index, e.term, e.kind) for e in entries] == [
        (42, 7, EntryKind.CONF_CHANGE),
        (43, 7, EntryKind.CONF_CHANGE),
    ]
    assert [ConfChange.decode(e.data) for e in entries] == [
        ConfChange(ConfChangeType.REMOVE, 2),
        ConfChange(ConfChangeType.REMOVE, 3),
    ]


def test_a_member_already_alone_needs_no_entries() -> None:
    assert removal_entries(own_id=1, members={1}, last_index=41, term=7) == []
