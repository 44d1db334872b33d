"""--force-new-cluster: a lone surviving member becomes a one-member cluster of its own.

After a quorum loss nothing can be committed, so the configuration cannot shrink through
Raft. Like etcd, the survivor rewrites it locally: on start it appends one REMOVE conf-change
entry for every other member to its own log, in its current term, marks them committed and
fsyncs them. Applying them is the ordinary path (member table tombstones, Raft configuration,
peer transport), so the change is as durable as any committed entry and the removed IDs can
never come back; the member is then the only voter and elects itself. `member add` grows it
again.

One difference from etcd, on purpose: etcd drops the entries after the survivor's commit
index first. Those may include writes the lost majority had committed and acknowledged to
clients, which only this member still holds; cairn keeps and applies them. An entry that was
never committed may thereby take effect, which is allowed: its client got no answer, or an
error that says the outcome is unknown (a timeout).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cairn.raft import ConfChange, ConfChangeType, Entry, EntryKind


def members_after_log(
    table: Iterable[int], entries: Sequence[Entry], applied_index: int
) -> set[int]:
    """The member IDs once every entry in the log is applied: the table (state at the
    applied index) changed by the conf changes after it."""
    members = set(table)
    for entry in entries:
        if entry.index <= applied_index or entry.kind is not EntryKind.CONF_CHANGE:
            continue
        change = ConfChange.decode(entry.data)
        if change.type is ConfChangeType.REMOVE:
            members.discard(change.node_id)
        else:
            members.add(change.node_id)
    return members


def removal_entries(own_id: int, members: Iterable[int], last_index: int, term: int) -> list[Entry]:
    """One REMOVE entry per member but `own_id`, after `last_index`, in `term`."""
    others = sorted(m for m in members if m != own_id)
    return [
        Entry(
            index=last_index + position,
            term=term,
            data=ConfChange(ConfChangeType.REMOVE, member_id).encode(),
            kind=EntryKind.CONF_CHANGE,
        )
        for position, member_id in enumerate(others, start=1)
    ]
