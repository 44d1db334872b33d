"""The differential scenarios: etcdctl invocations as data.

Every scenario starts on a fresh server (revision 1), so the revisions in the comments below
are exact. Comments starting with "etcd:" record behaviour of etcd 3.4.23 / etcdctl 3.4.23
that is easy to get wrong; the steps pin it down.
"""

from __future__ import annotations

from collections.abc import Iterator

from tests.differential.auth_scenarios import AUTH_SCENARIOS
from tests.differential.runner import Scenario, Step, ctl, feed, scenario, start, stop

FORMATS = ("simple", "json", "fields")
SORT_TARGETS = ("CREATE", "KEY", "MODIFY", "VALUE", "VERSION")
ORDERS = ("ASCEND", "DESCEND")

# `etcdctl lease grant` prints "lease 694d7a1b2c3d4e5f granted with TTL(600s)".
LEASE_ID = r"lease ([0-9a-f]+) granted"


def in_formats(*args: str, stdin: str | None = None) -> Iterator[Step]:
    """The same command in the default (simple), json and fields output formats."""
    yield ctl(*args, stdin=stdin)
    for fmt in FORMATS[1:]:
        yield ctl(*args, "-w", fmt, stdin=stdin)


def txn(compares: list[str], success: list[str], failure: list[str]) -> str:
    """The stdin of `etcdctl txn`: compares, success ops, failure ops, each ended by a blank line."""
    return "".join("\n".join([*section, ""]) + "\n" for section in (compares, success, failure))


def puts(*pairs: tuple[str, str]) -> Iterator[Step]:
    for key, value in pairs:
        yield ctl("put", key, value)


# -- put ---------------------------------------------------------------------------------------

PUT_BASICS = scenario(
    "put_prints_ok_and_each_put_bumps_the_revision",
    ctl("put", "k1", "v1"),  # rev 2
    ctl("put", "k1", "v2", "-w", "json"),  # rev 3
    ctl("put", "k1", "v3", "-w", "fields"),  # rev 4
    in_formats("get", "k1"),
    ctl("put", "k2", "v", "-w", "table"),  # etcd: table is rejected client-side, exit 4
    ctl("put", "k2", "v", "-w", "nonsense"),
    ctl("put", "k2"),  # no value and empty stdin: exit 128, nothing written
    ctl("put"),
    ctl("put", "k2", "v", "extra"),  # etcd: extra arguments are silently ignored
    in_formats("get", "k2"),
)

PUT_PREV_KV = scenario(
    "put_prev_kv_returns_the_overwritten_pair",
    in_formats("put", "fresh", "a", "--prev-kv"),  # first has no prev; then prev = a
    ctl("put", "fresh", "b", "--prev-kv"),
    ctl("put", "fresh", "c", "--prev-kv", "-w", "json"),
    ctl("put", "fresh", "d", "--prev-kv", "-w", "fields"),
    ctl("put", "empty", "", "--prev-kv"),
    ctl("put", "empty", "x", "--prev-kv", "-w", "json"),  # prev value "" is omitted in json
    ctl("put", "empty", "y", "--prev-kv", "-w", "fields"),
)

PUT_FROM_STDIN = scenario(
    "put_reads_the_value_from_stdin_and_honours_double_dash",
    ctl("put", "s1", stdin="from stdin\n"),  # etcd: the trailing newline is kept in the value
    ctl("get", "s1", "-w", "json"),
    ctl("put", "s2", stdin="\n"),
    ctl("get", "s2", "-w", "fields"),
    ctl("put", "s3", stdin="multi\nline\nvalue"),
    ctl("get", "s3"),
    ctl("put", "s4", "argument wins", stdin="ignored stdin"),
    ctl("get", "s4", "--print-value-only"),
    ctl("put", "dash", "-v"),  # etcd: a value starting with '-' is parsed as a flag
    ctl("put", "dash", "--", "-v"),
    ctl("put", "--", "-key", "-value"),
    ctl("get", "--", "-key"),
    ctl("get", "dash", "-w", "json"),
)

PUT_IGNORE_VALUE = scenario(
    "put_ignore_value_keeps_the_value_and_fails_on_a_missing_key",
    ctl("put", "k", "v1"),  # rev 2
    ctl("put", "k", "--ignore-value"),  # rev 3, value stays v1
    in_formats("get", "k"),
    ctl("put", "k", "--ignore-value", "--prev-kv"),  # rev 4
    ctl("put", "k", "--ignore-value", "--prev-kv", "-w", "json"),
    ctl("put", "k", "--ignore-value", "--prev-kv", "-w", "fields"),
    ctl("put", "k", "v2", "--ignore-lease"),  # no lease to keep: fine, rev 7
    ctl("put", "k", "--ignore-value", "--ignore-lease", "-w", "json"),  # rev 8
    ctl("get", "k", "-w", "fields"),
    ctl("put", "k", "v3", "--ignore-value"),  # client-side: exit 128
    ctl("put", "k", "--ignore-value", stdin="stdin is not read"),
    ctl("get", "k", "--print-value-only"),
    ctl("put", "missing", "--ignore-value"),  # etcd: "key not found", InvalidArgument
    ctl("put", "missing", "v", "--ignore-lease"),
    ctl("put", "missing", "--ignore-value", "--ignore-lease", "-w", "json"),
    ctl("get", "missing", "-w", "json"),
    ctl("del", "k"),
    ctl("put", "k", "--ignore-value"),  # deleted keys are missing too
    ctl("put", "k", "v", "--ignore-lease", "-w", "fields"),
    ctl("get", "", "--from-key", "-w", "json"),
)

PUT_UNKNOWN_LEASE = scenario(
    "put_with_an_unknown_lease_is_rejected",
    ctl("put", "c", "x", "--lease", "1234abcd"),  # etcd: "requested lease not found", NotFound
    ctl("put", "c", "x", "--lease", "1234abcd", "-w", "json"),
    ctl("put", "c", "x", "--lease", "-1"),  # etcd: parsed as -1, also "not found"
    ctl("put", "c", "x", "--lease", "zz"),  # client-side parse error, exit 128
    ctl("put", "c", "x", "--lease", "0"),  # 0 means no lease
    ctl("put", "c", "--ignore-value", "--lease", "1234abcd"),
    # etcd: "lease is provided" (InvalidArgument) is checked before the lease lookup
    ctl("put", "c", "y", "--lease", "1234abcd", "--ignore-lease"),
    ctl("txn", stdin=txn([], ["put d x --lease 1234abcd"], [])),
    ctl("get", "", "--from-key", "-w", "json"),
)

PUT_IGNORE_LEASE = scenario(
    "put_ignore_lease_keeps_the_current_lease",
    ctl("lease", "grant", "600", capture={"lease": LEASE_ID}),
    ctl("put", "k", "v1", "--lease", "{{lease}}"),  # rev 2
    ctl("put", "k", "--ignore-value"),  # rev 3, value stays v1, lease is dropped
    ctl("get", "k", "-w", "json"),
    ctl("put", "k", "--ignore-value", "--lease", "{{lease}}"),  # rev 4, attaches the lease
    ctl("put", "k", "v2", "--ignore-lease"),  # rev 5, value v2, lease kept
    in_formats("get", "k"),
    ctl("put", "k", "--ignore-value", "--ignore-lease", "--prev-kv"),  # rev 6, nothing changes
    ctl("put", "k", "--ignore-value", "--ignore-lease", "--prev-kv", "-w", "json"),
    ctl("put", "k", "--ignore-value", "--ignore-lease", "--prev-kv", "-w", "fields"),
    ctl("get", "k", "-w", "fields"),
    ctl("put", "k", "v4", "--lease", "{{lease}}", "--ignore-lease"),  # "lease is provided"
    ctl("lease", "revoke", "{{lease}}"),  # deletes k
    ctl("put", "k", "v5", "--ignore-lease"),  # missing key again
    ctl("get", "", "--from-key", "-w", "json"),
)

PUT_LEASE = scenario(
    "put_lease_attaches_replaces_and_detaches_and_revoke_deletes",
    ctl("lease", "grant", "600", capture={"lease": LEASE_ID}),
    ctl("lease", "grant", "900", capture={"other": LEASE_ID}),
    ctl("put", "a", "1", "--lease", "{{lease}}"),
    ctl("put", "b", "2", "--lease", "{{lease}}"),
    in_formats("get", "a"),
    ctl("put", "a", "3", "--lease", "{{other}}", "-w", "json"),
    ctl("get", "a", "-w", "fields"),
    ctl("put", "a", "4"),  # no --lease: the lease is detached
    ctl("get", "a", "-w", "json"),
    ctl("put", "c", "x", "--lease", "{{lease}}", "--prev-kv", "-w", "json"),
    ctl("txn", stdin=txn([], ["put t x --lease {{lease}}", "get t"], [])),
    ctl("lease", "revoke", "{{lease}}"),  # deletes b, c and t: one revision
    ctl("get", "", "--from-key", "-w", "json"),
    ctl("put", "d", "x", "--lease", "{{lease}}"),  # revoked: not found
    ctl("put", "a", "--ignore-value", "--lease", "{{lease}}"),
    ctl("put", "a", "5", "--lease", "{{other}}"),
    ctl("get", "", "--from-key", "-w", "fields"),
)

# -- lease -------------------------------------------------------------------------------------

# Remaining TTLs are whole seconds truncated: a step that reads one runs well within a second
# of the grant or keep-alive it depends on, so both servers print TTL - 1.
LEASE_LIFECYCLE = scenario(
    "lease_grant_timetolive_keepalive_list_and_revoke",
    ctl("lease", "grant", "600", capture={"lease": LEASE_ID}),
    ctl("lease", "timetolive", "{{lease}}"),  # remaining(599s)
    ctl("put", "k", "v", "--lease", "{{lease}}"),  # rev 2
    ctl("lease", "timetolive", "{{lease}}", "--keys"),
    ctl("lease", "timetolive", "{{lease}}", "--keys", "-w", "json"),
    ctl("lease", "timetolive", "{{lease}}", "-w", "fields"),
    ctl("lease", "keep-alive", "--once", "{{lease}}"),  # keepalived with TTL(600)
    ctl("lease", "keep-alive", "--once", "{{lease}}", "-w", "json"),
    ctl("lease", "list"),
    ctl("lease", "list", "-w", "json"),
    ctl("lease", "grant", "900", capture={"other": LEASE_ID}),
    ctl("lease", "list"),  # the leader lists the soonest to expire first
    ctl("lease", "revoke", "{{lease}}"),  # deletes k: rev 3
    ctl("lease", "revoke", "{{other}}", "-w", "json"),  # no keys: the revision stays
    ctl("lease", "timetolive", "{{lease}}"),  # etcd: "already expired" (TTL -1)
    ctl("lease", "timetolive", "{{lease}}", "-w", "json"),
    ctl("lease", "list"),
    ctl("get", "", "--from-key", "-w", "json"),
)

LEASE_ERRORS = scenario(
    "lease_errors_and_the_minimum_ttl_match_etcd",
    ctl("lease", "revoke", "1234abcd"),  # etcd: "requested lease not found", NotFound
    ctl("lease", "timetolive", "1234abcd"),  # etcd: TTL -1, "already expired"
    ctl("lease", "keep-alive", "--once", "1234abcd"),  # etcd: TTL 0, client: not found
    ctl("lease", "keep-alive", "1234abcd"),  # etcd: "expired or revoked", exit 0 (no --once)
    ctl("lease", "grant", "9000000001"),  # etcd: "too large lease TTL", OutOfRange
    ctl("lease", "grant", "9000000000", capture={"max": LEASE_ID}),
    ctl("lease", "grant", "1", capture={"short": LEASE_ID}),  # etcd: raised to 2 s
    ctl("lease", "grant", "0", capture={"zero": LEASE_ID}),
    ctl("lease", "grant", "--", "-5", capture={"negative": LEASE_ID}),  # etcd: raised to 2 s
    ctl("lease", "grant", "abc"),  # client-side parse error
    ctl("lease", "grant"),  # missing argument
    ctl("lease", "revoke", "zz"),
    ctl("lease", "timetolive"),
)

# -- get ---------------------------------------------------------------------------------------

RANGE_KEYS = (("a", "1"), ("ab", "2"), ("abc", "3"), ("b", "4"), ("ba", "5"), ("c", "6"))

GET_RANGES = scenario(
    "get_key_range_prefix_and_from_key_select_the_right_keys",
    puts(*RANGE_KEYS),  # revs 2..7
    in_formats("get", "a"),
    in_formats("get", "a", "b"),  # [a, b)
    ctl("get", "a", "c"),
    ctl("get", "ab", "ba", "-w", "json"),
    ctl("get", "b", "b"),  # empty range: range_end == key
    ctl("get", "c", "a", "-w", "json"),  # range_end < key: nothing, not an error
    ctl("get", "a", "zzz", "-w", "fields"),
    in_formats("get", "--prefix", "a"),
    ctl("get", "--prefix", "b", "-w", "json"),
    ctl("get", "--prefix", "abcd"),
    ctl("get", "--prefix", ""),  # etcd: empty prefix means every key
    in_formats("get", "--from-key", "b"),
    ctl("get", "--from-key", ""),
    ctl("get", "--from-key", "zzz", "-w", "json"),
    ctl("get", "nope"),
    in_formats("get", "nope"),
    ctl("get", "a", "--prefix", "c"),  # client-side errors, exit 128
    ctl("get", "a", "--prefix", "--from-key"),
    ctl("get"),
    ctl("get", "a", "b", "c"),  # etcd: a third argument is silently ignored
)

GET_OUTPUT_SHAPING = scenario(
    "get_limit_keys_only_and_print_value_only_shape_the_output",
    puts(*RANGE_KEYS),
    in_formats("get", "--prefix", "a", "--limit", "2"),  # More=true
    ctl("get", "--prefix", "a", "--limit", "3", "-w", "json"),  # exactly all: more omitted
    ctl("get", "--prefix", "a", "--limit", "4", "-w", "fields"),
    ctl("get", "--from-key", "", "--limit", "1", "-w", "json"),
    ctl("get", "--prefix", "a", "--limit", "0", "-w", "json"),  # 0 means no limit
    ctl("get", "--prefix", "a", "--limit", "-1", "-w", "json"),
    in_formats("get", "--prefix", "a", "--keys-only"),
    ctl("get", "--prefix", "a", "--keys-only", "--limit", "1", "-w", "json"),
    in_formats("get", "--prefix", "a", "--print-value-only"),
    ctl("get", "--prefix", "a", "--print-value-only", "--keys-only"),
    ctl("get", "--prefix", "a", "--count-only"),  # etcd 3.4: no such flag (added in 3.5)
    ctl("get", "--prefix", "a", "--limit", "x"),
)


def _sort_steps() -> Iterator[Step]:
    for target in SORT_TARGETS:
        for order in ORDERS:
            yield ctl("get", "--prefix", "s/", "--sort-by", target, "--order", order)
        yield ctl("get", "--prefix", "s/", "--sort-by", target, "-w", "json")
        yield ctl(
            "get", "--prefix", "s/", "--sort-by", target, "--order", "DESCEND", "--limit", "2"
        )


GET_SORT = scenario(
    "get_sort_by_every_target_in_both_orders",
    # create order s/c, s/a, s/d, s/b; then s/d and s/c are modified, s/a twice.
    # VERSION has ties (etcd: ties keep key order, also in DESCEND), VALUE has a tie too.
    puts(("s/c", "zeta"), ("s/a", "beta"), ("s/d", "alpha"), ("s/b", "beta")),
    puts(("s/d", "gamma"), ("s/a", "delta"), ("s/c", "eta"), ("s/a", "beta")),
    _sort_steps(),
    ctl("get", "--prefix", "s/", "--order", "DESCEND"),  # etcd: no --sort-by means by key
    ctl("get", "--prefix", "s/", "--order", "ASCEND", "-w", "json"),
    ctl("get", "--prefix", "s/", "--order", "DESCEND", "--keys-only", "--limit", "3"),
    ctl("get", "--prefix", "s/", "--sort-by", "version", "--order", "descend"),  # case-insensitive
    ctl("get", "--prefix", "s/", "--sort-by", "SIZE"),  # client-side errors
    ctl("get", "--prefix", "s/", "--order", "UP"),
)

GET_CONSISTENCY = scenario(
    "get_consistency_linearizable_and_serializable_return_the_same_data",
    puts(("c1", "x"), ("c2", "y")),
    in_formats("get", "--prefix", "c", "--consistency", "l"),
    in_formats("get", "--prefix", "c", "--consistency", "s"),
    ctl("get", "c1", "--consistency", "s", "--rev", "2", "-w", "json"),
    ctl("get", "c1", "--consistency", "x"),  # client-side error
)

GET_HISTORY = scenario(
    "get_rev_reads_history_after_updates_and_deletes",
    ctl("put", "h", "v1"),  # rev 2
    ctl("put", "h", "v2"),  # rev 3
    ctl("put", "o", "other"),  # rev 4
    ctl("del", "h"),  # rev 5
    ctl("put", "h", "v3"),  # rev 6: a new generation, version 1 again
    ctl("put", "o", "other2"),  # rev 7
    [ctl("get", "h", "--rev", str(rev), "-w", "json") for rev in range(1, 8)],
    in_formats("get", "h", "--rev", "3"),
    ctl("get", "h", "--rev", "5", "-w", "fields"),
    ctl("get", "--prefix", "", "--rev", "4", "-w", "json"),
    ctl("get", "--prefix", "", "--rev", "5"),
    ctl("get", "--from-key", "a", "--rev", "6", "--keys-only"),
    ctl("get", "a", "z", "--rev", "2", "-w", "fields"),
    ctl("get", "--prefix", "", "--rev", "3", "--sort-by", "VALUE", "--order", "DESCEND"),
    ctl("get", "--prefix", "", "--rev", "7", "--limit", "1", "-w", "json"),
    ctl("get", "h", "--rev", "0", "-w", "json"),  # 0 means the current revision
)

GET_REVISION_ERRORS = scenario(
    "get_rev_beyond_the_current_revision_is_a_future_revision_error",
    puts(("f", "1"), ("f", "2")),  # current revision 3
    ctl("get", "f", "--rev", "3", "-w", "json"),
    # etcd: OutOfRange "required revision is a future revision"
    in_formats("get", "f", "--rev", "4"),
    ctl("get", "f", "--rev", "1000000"),
    ctl("get", "--prefix", "f", "--rev", "4", "--keys-only"),
    ctl("get", "f", "--rev", "-1", "-w", "json"),  # etcd: negative revision reads the current one
    ctl("get", "f", "--rev", "x"),
)

# -- compaction ----------------------------------------------------------------------------------

COMPACTION = scenario(
    "compaction_discards_history_below_the_revision",
    ctl("put", "k", "v1"),  # rev 2
    ctl("put", "k", "v2"),  # rev 3
    ctl("put", "gone", "x"),  # rev 4
    ctl("del", "gone"),  # rev 5
    ctl("put", "k", "v3"),  # rev 6
    ctl("compaction", "4"),
    ctl("get", "k", "--rev", "3"),  # etcd: OutOfRange "required revision has been compacted"
    ctl("get", "k", "--rev", "3", "-w", "json"),
    ctl("get", "k", "--rev", "1", "-w", "fields"),
    in_formats("get", "k", "--rev", "4"),  # the compacted revision itself is still readable
    ctl("get", "--prefix", "", "--rev", "4", "-w", "json"),
    ctl("get", "--prefix", "", "--rev", "5", "-w", "json"),
    ctl("get", "k", "--rev", "7"),  # future
    ctl("txn", stdin=txn([], ["get k --rev 3"], [])),  # compacted, inside a txn
    ctl("txn", stdin=txn([], ["get k --rev 4", "get k --rev 5"], [])),
    in_formats("get", "k"),
    ctl("compaction", "4"),  # again: compacted
    ctl("compaction", "3"),  # below: compacted
    ctl("compaction", "7"),  # future
    ctl("compaction", "0"),
    ctl("compaction", "-1"),
    ctl("compaction", "x"),  # client-side errors
    ctl("compaction"),
    ctl("compaction", "6"),  # the current revision can be compacted
    ctl("get", "k", "--rev", "5"),
    ctl("get", "k", "--rev", "6", "-w", "json"),
    ctl("put", "k", "v4"),  # compaction writes no revision: this is rev 7
    ctl("get", "k", "-w", "json"),
)

COMPACTION_FORMATS = scenario(
    "compaction_physical_and_output_formats",
    ctl("compaction", "0"),  # nothing compacted yet
    ctl("compaction", "1"),
    ctl("compaction", "1"),
    puts(("a", "1"), ("a", "2"), ("a", "3"), ("a", "4"), ("a", "5")),  # revs 2..6
    ctl("compaction", "2", "--physical"),
    ctl("compaction", "3", "-w", "json"),  # etcd: compaction ignores -w, prints simple text
    ctl("compaction", "4", "-w", "fields"),
    ctl("compaction", "5", "--physical", "-w", "table"),
    ctl("compaction", "5", "--physical"),
    ctl("get", "a", "--rev", "4", "-w", "json"),
    ctl("get", "a", "--rev", "5", "-w", "json"),
)

HASHKV = scenario(
    "endpoint_hashkv_formats_revisions_and_errors",
    in_formats("endpoint", "hashkv"),  # revision 1, nothing compacted: compact_revision -1
    ctl("endpoint", "hashkv", "-w", "table"),
    puts(("a", "1"), ("b", "1"), ("a", "2"), ("c", "1")),  # revs 2..5
    ctl("del", "b"),  # rev 6
    ctl("endpoint", "hashkv", "-w", "json"),
    ctl("endpoint", "hashkv", "--rev", "3", "-w", "json"),
    ctl("endpoint", "hashkv", "--rev", "3"),  # the same hash as the step above
    ctl("endpoint", "hashkv", "--rev", "0", "-w", "json"),  # 0: current
    ctl("endpoint", "hashkv", "--rev", "7"),  # etcd: future revision, OutOfRange
    ctl("compaction", "4"),
    ctl("endpoint", "hashkv", "--rev", "4"),  # etcd: the compacted revision itself is refused
    ctl("endpoint", "hashkv", "--rev", "2", "-w", "json"),
    ctl("endpoint", "hashkv", "--rev", "5", "-w", "json"),  # compact_revision 4
    ctl("endpoint", "hashkv", "--cluster", "-w", "json"),
    ctl("put", "a", "3"),  # rev 7: the current hash changes, the one at 5 does not
    ctl("endpoint", "hashkv", "-w", "json"),
    ctl("endpoint", "hashkv", "--rev", "5"),
)

# A value larger than the quota below on its own: both servers refuse the first put of it,
# whatever their database's starting size, so the alarm is raised at the same step. (On
# stdin: one command-line argument may not exceed 128 KiB.)
QUOTA_BYTES = 100_000
BIG_VALUE = "x" * 150_000

NOSPACE = scenario(
    "nospace_alarm_refuses_writes_until_disarmed",
    ctl("alarm", "list"),  # none: prints nothing
    ctl("alarm", "list", "-w", "json"),
    ctl("put", "small", "v"),  # rev 2
    ctl("put", "big", stdin=BIG_VALUE),  # etcd: ResourceExhausted, and NOSPACE is raised
    in_formats("alarm", "list"),  # etcd: -w fields panics, the response has no header
    ctl("put", "small", "w"),  # refused while the alarm is active
    ctl("txn", stdin=txn([], ["put a b"], [])),  # a txn with a put: refused
    ctl("txn", stdin=txn([], [], ["put a b"])),  # a put in the branch not taken counts too
    ctl("lease", "grant", "10"),  # etcd: "failed to grant lease (... space exceeded)"
    ctl("get", "small", "-w", "json"),  # reads are served
    ctl("put", "other", "v"),
    ctl("txn", stdin=txn([], ["del nothing"], [])),  # etcd: a delete-only txn goes through
    ctl("del", "small"),  # rev 3: deletes go through
    ctl("compaction", "3"),  # and compaction
    ctl("alarm", "disarm"),  # prints the alarm it disarmed
    ctl("alarm", "disarm"),  # nothing left: prints nothing
    ctl("alarm", "disarm", "-w", "json"),
    ctl("alarm", "list"),
    ctl("put", "small", "again"),  # rev 4: accepted again
    ctl("get", "small", "-w", "json"),
    server_args=(f"--quota-backend-bytes={QUOTA_BYTES}",),
)

DEFRAG = scenario(
    "defrag_one_member_and_the_cluster",
    puts(("a", "1"), ("a", "2"), ("b", "1")),  # revs 2..4
    ctl("del", "a"),  # rev 5
    ctl("compaction", "--physical", "5"),
    ctl("defrag"),
    ctl("defrag", "--cluster"),
    ctl("defrag", "-w", "json"),  # etcd: prints the same line whatever the format
    ctl("get", "", "--prefix", "-w", "json"),  # the data is unchanged
    ctl("get", "a", "--rev", "4"),  # compacted
    ctl("put", "c", "1"),  # rev 6
    ctl("endpoint", "hashkv", "--rev", "5", "-w", "json"),
)

# -- del ---------------------------------------------------------------------------------------

DELETE = scenario(
    "del_removes_a_key_a_range_a_prefix_or_everything_from_a_key",
    puts(*RANGE_KEYS),  # revs 2..7
    ctl("del", "a"),  # rev 8: prints the count
    ctl("del", "a"),  # missing: 0, no new revision
    ctl("del", "a", "-w", "json"),
    ctl("del", "a", "-w", "fields"),
    ctl("del", "ab", "b", "-w", "json"),  # [ab, b): ab, abc in one revision
    ctl("get", "--prefix", "", "-w", "json"),
    ctl("del", "--prefix", "b", "-w", "fields"),
    ctl("del", "--prefix", "b"),
    puts(*RANGE_KEYS),
    ctl("del", "--from-key", "b"),
    ctl("get", "--from-key", "", "--keys-only"),
    ctl("del", "c", "a"),  # range_end < key: deletes nothing
    ctl("del", "a", "--prefix", "c"),  # client-side errors
    ctl("del", "a", "--prefix", "--from-key"),
    ctl("del"),
    ctl("del", "--prefix", ""),  # etcd: deletes every key
    ctl("get", "--from-key", "", "-w", "json"),
)

DELETE_PREV_KV = scenario(
    "del_prev_kv_returns_the_deleted_pairs",
    puts(*RANGE_KEYS),
    ctl("put", "ab", "2b"),
    in_formats("del", "abc", "--prev-kv"),  # only the first deletes
    ctl("del", "a", "--prev-kv", "-w", "json"),
    ctl("del", "--prefix", "a", "--prev-kv", "-w", "fields"),
    ctl("del", "b", "c", "--prev-kv"),
    ctl("del", "--from-key", "", "--prev-kv", "-w", "json"),
    ctl("del", "--from-key", "", "--prev-kv"),
)

# -- txn ---------------------------------------------------------------------------------------


def _compare_steps() -> Iterator[Step]:
    # k: value "m", version 2, create 2, mod 3 (after the puts below).
    cases = {
        "value": ("m", "a", "z"),
        "version": ("2", "1", "3"),
        "create": ("2", "1", "3"),
        "mod": ("3", "2", "4"),
    }
    for target, (equal, lower, higher) in cases.items():
        for op in ("=", "!=", ">", "<"):
            for operand in (equal, lower, higher):
                compare = f'{target}("k") {op} "{operand}"'
                yield ctl("txn", stdin=txn([compare], ["get k"], ["get other"]))


TXN_COMPARES = scenario(
    "txn_compares_value_version_create_and_mod_with_every_operator",
    ctl("put", "k", "l"),  # rev 2
    ctl("put", "k", "m"),  # rev 3
    ctl("put", "other", "o"),  # rev 4
    _compare_steps(),
    # Missing keys: etcd fails a value compare on a missing key whatever the operator.
    ctl("txn", stdin=txn(['value("nope") = ""'], ["get k"], ["get other"])),
    ctl("txn", stdin=txn(['value("nope") != "x"'], ["get k"], ["get other"])),
    ctl("txn", stdin=txn(['version("nope") = "0"'], ["get k"], ["get other"])),
    ctl("txn", stdin=txn(['create("nope") = "0"'], ["get k"], ["get other"])),
    ctl("txn", stdin=txn(['mod("nope") < "1"'], ["get k"], ["get other"])),
    # All compares must hold.
    ctl("txn", stdin=txn(['value("k") = "m"', 'version("k") = "2"'], ["get k"], ["get other"])),
    ctl("txn", stdin=txn(['value("k") = "m"', 'version("k") = "9"'], ["get k"], ["get other"])),
    # Short target names are accepted by etcdctl.
    ctl(
        "txn",
        stdin=txn(
            ['val("k") = "m"', 'ver("k") = "2"', 'c("k") = "2"', 'm("k") = "3"'], ["get k"], []
        ),
    ),
    # etcd 3.4: etcdctl parses lease("k") but then panics building the compare (exit 2).
    ctl("txn", stdin=txn(['lease("k") = "0"'], ["get k"], [])),
)

TXN_BRANCHES = scenario(
    "txn_runs_the_success_or_failure_branch_in_every_format",
    puts(("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5"), ("f", "6")),  # revs 2..7
    ctl("txn", stdin=txn(['value("a") = "1"'], ["put a 10", "get a", "del c"], ["put a 20"])),
    ctl("txn", stdin=txn(['value("a") = "1"'], ["put a 11"], ["put a 21", "get a", "del b"])),
    ctl("txn", "-w", "json", stdin=txn(['value("a") = "21"'], ["put x 1", "get x", "del d"], [])),
    ctl("txn", "-w", "fields", stdin=txn(['value("a") = "21"'], ["put y 1", "get y", "del e"], [])),
    ctl("txn", "-w", "json", stdin=txn(['value("a") = "0"'], [], ["put z 1", "get z", "del f"])),
    ctl("txn", "-w", "fields", stdin=txn(['value("a") = "0"'], [], ["get a", "get zz"])),
    ctl("txn", "-w", "json", stdin=txn(['value("a") = "0"'], ["put q 1"], [])),  # empty branch
    ctl("txn", stdin=txn([], [], [])),  # no compares: success with nothing to do
    ctl("txn", "-w", "json", stdin=txn([], [], [])),
    # Ops take the get/put/del flags.
    ctl(
        "txn",
        "-w",
        "json",
        stdin=txn([], ["put a 30 --prev-kv", "del b --prev-kv", "get --prefix a --keys-only"], []),
    ),
    ctl("txn", stdin=txn([], ["put x 1", "put y 2", "get --from-key a --limit 2"], [])),
    ctl("txn", stdin=txn([], ["get a --rev 2", "get a c", "del --prefix x --prev-kv"], [])),
    ctl("txn", "-w", "fields", stdin=txn([], ["get a --rev 1", 'get --prefix ""'], [])),
    ctl("txn", stdin=txn([], ['put "spaced key" "spaced value"', 'get "spaced key"'], [])),
    ctl("txn", stdin=txn([], ["get a --rev 100"], [])),  # future revision inside a txn
    ctl("txn", stdin=txn([], ["put y 3", "get a --sort-by VALUE --prefix"], [])),
    ctl("get", "", "--from-key", "-w", "json"),
)

TXN_INTERACTIVE = scenario(
    "txn_interactive_prompts_and_reads_answers_from_stdin",
    puts(("a", "1")),
    ctl("txn", "-i", stdin=txn(['value("a") = "1"'], ["put a 2", "get a"], ["put a 3"])),
    ctl("txn", "-i", stdin=txn(['value("a") = "1"'], ["put a 4"], ["put a 5", "get a"])),
    ctl("txn", "--interactive", "-w", "json", stdin=txn([], ["get a"], [])),
    ctl("txn", "-i", "-w", "fields", stdin=txn(['version("a") > "1"'], ["del a"], [])),
    ctl("txn", "-i", stdin='value("a") = "1"\n\nput x 1\n'),  # stdin ends early: EOF, exit 3
    ctl("txn", "-i", stdin="bad compare\n"),
    ctl("get", "", "--from-key"),
)


def _many_puts(n: int) -> list[str]:
    return [f"put t{i:03d} v" for i in range(n)]


TXN_LIMITS = scenario(
    "txn_rejects_more_than_128_ops_and_duplicate_keys",
    ctl("txn", stdin=txn([], _many_puts(128), [])),  # exactly the default --max-txn-ops
    ctl("txn", stdin=txn([], _many_puts(129), [])),  # "too many operations in txn request"
    ctl("txn", stdin=txn([], [], _many_puts(129))),  # each branch is checked
    ctl("txn", stdin=txn([f'value("t{i:03d}") = "v"' for i in range(129)], [], [])),
    ctl("get", "--prefix", "t", "--limit", "1", "-w", "json"),  # count 128
    ctl("txn", stdin=txn([], ["put a 1", "put a 2"], [])),  # "duplicate key given in txn request"
    ctl("txn", stdin=txn([], ["put a 1", "del a"], [])),
    ctl("txn", stdin=txn([], ["del a", "put a 1"], [])),
    ctl("txn", stdin=txn([], ["put ab 1", "del --prefix a"], [])),  # put inside a deleted range
    ctl("txn", stdin=txn([], ["put b 1", "del a c"], [])),
    ctl("txn", stdin=txn([], ["put c 1", "del a c"], [])),  # c is outside [a, c): allowed
    ctl("txn", stdin=txn([], ["del a", "del a"], [])),  # etcd: overlapping deletes are allowed
    ctl("txn", stdin=txn([], ["get a", "put a 9", "get a"], [])),  # get + put is allowed
    ctl("txn", stdin=txn([], ["put a 1"], ["put a 2"])),  # different branches: allowed
    ctl("txn", stdin=txn(['value("a") = "1"', 'value("a") = "1"'], ["put z 1"], [])),
    ctl("get", "", "--from-key", "--keys-only"),
)

TXN_GRAMMAR_ERRORS = scenario(
    "txn_input_errors_are_reported_by_etcdctl",
    ctl("put", "a", "1"),
    ctl("txn", stdin=""),  # EOF before the compares end: exit 3
    ctl("txn", stdin='value("a") = "1"\n'),
    ctl("txn", stdin=txn(['value(a) = "1"'], [], [])),  # malformed comparison
    ctl("txn", stdin=txn(['foo("a") = "1"'], [], [])),  # unknown target
    ctl("txn", stdin=txn(['version("a") = "x"'], [], [])),  # not a number
    ctl("txn", stdin=txn(['value("a") >= "1"'], [], [])),  # etcd: etcdctl panics, exit 2
    ctl("txn", stdin=txn([], ["foo a"], [])),  # unknown op
    ctl("txn", stdin=txn([], ["put a"], [])),  # put needs a value inside a txn
    ctl("txn", stdin=txn([], ['put "" v'], [])),  # empty key: "key is not provided"
    ctl("txn", stdin=txn([], ['get ""'], [])),
    ctl("txn", stdin=txn([], ['del ""'], [])),
    ctl("txn", stdin=txn([], ["put '' v"], [])),  # etcd: no single quotes in txn input: key is ''
    ctl("txn", stdin=txn([], ["get ''"], [])),
    ctl("txn", stdin=txn([], ["put a v --lease 1234"], [])),  # unknown lease inside a txn
    ctl("txn", "extra", stdin=txn([], ["get a"], [])),
    ctl("get", "", "--from-key", "-w", "json"),
)

# -- limits, odd keys and values --------------------------------------------------------------------

MAX_REQUEST_BYTES = 1024
GRPC_OVERHEAD = 512 * 1024  # etcd: gRPC max receive size = max-request-bytes + 512 KiB
# etcd: the limit applies to the encoded raft request, not to the gRPC message: for a put that is
# key + value + framing + a request header whose id (a varint, 8 to 10 bytes) depends on the
# member id. With key "big" the largest value that fits is 999 to 1001 bytes, so the steps at
# the edge use 999 (always fits) and 1002 (never fits).

REQUEST_SIZE = scenario(
    "request_size_limits_reject_large_puts_and_txns",
    ctl("put", "big", "v" * 900),
    ctl("put", "big", "v" * 990),
    ctl("put", "big", "v" * 999),  # etcd: the largest value that fits with a 3-byte key
    ctl("get", "big", "-w", "json"),
    ctl("put", "big", "v" * 1002),  # etcd: "request is too large" although < 1024 bytes of value
    ctl("put", "big", "v" * 1010),
    ctl("put", "big", "v" * MAX_REQUEST_BYTES),
    ctl("put", "big", "v" * 2000, "-w", "json"),
    ctl("put", "k" * 1010, "v"),  # the key counts too
    ctl("put", "big", stdin="v" * (GRPC_OVERHEAD - 1000)),  # under the gRPC limit: too large
    # etcd: above the gRPC receive limit the error is gRPC's ResourceExhausted message
    ctl("put", "big", stdin="v" * (MAX_REQUEST_BYTES + GRPC_OVERHEAD)),
    ctl("put", "big", stdin="v" * 2_000_000),
    ctl("txn", stdin=txn([], [f"put t{i} {'v' * 300}" for i in range(4)], [])),
    ctl("txn", stdin=txn([], [f"put t{i} {'v' * 100}" for i in range(4)], [])),
    ctl("get", "big", "--print-value-only"),
    ctl("get", "--prefix", "t", "--keys-only"),
    ctl("del", "--prefix", "t", "--prev-kv"),  # responses may exceed the request limit
    ctl("get", "", "--from-key", "-w", "json"),
    server_args=["--max-request-bytes", str(MAX_REQUEST_BYTES)],
)

ODD_KEYS = scenario(
    "odd_keys_and_values_round_trip_byte_for_byte",
    ctl("put", "with space", "value with  spaces "),
    ctl("put", "tab\tkey", "tab\tvalue"),
    ctl("put", "newline\nkey", "line1\nline2\n"),
    ctl("put", "ключ", "значение"),
    ctl("put", "日本語", "🦀 crab"),
    ctl("put", b"bin\x01\xff\xfe", b"\x01\x02\xff"),
    ctl("put", "quote\"'`", "$HOME \\n"),
    ctl("put", "/", "slash"),
    ctl("put", "~", "tilde"),
    ctl("put", "\x7f", "del char"),
    in_formats("get", "", "--from-key"),
    ctl("get", "", "--from-key", "--hex"),
    ctl("get", "", "--from-key", "--hex", "-w", "fields"),
    ctl("get", "", "--from-key", "--keys-only", "--hex"),
    ctl("get", "--prefix", "ключ", "-w", "json"),
    ctl("get", b"bin\x01", b"bin\x02", "--hex"),
    ctl("get", b"\xff", "--from-key", "-w", "json"),
    ctl("put", b"\xff", "ff"),
    ctl("put", b"\xff\xff", "ffff"),
    ctl("put", b"\xfe\xff", "feff"),
    # etcd: the prefix end of "\xff..." is "\x00", i.e. everything from the key on
    ctl("get", "--prefix", b"\xff", "--hex"),
    ctl("get", "--prefix", b"\xfe", "--hex"),  # prefix end "\xff"
    ctl("get", "--prefix", b"\xfe\xff", "-w", "json"),
    ctl("del", "--prefix", b"\xff", "--prev-kv", "--hex"),
    ctl("put", "hexflag", "x", "--hex"),  # --hex changes output only
    ctl("get", "hexflag", "--hex", "--print-value-only"),
    # NUL bytes cannot travel in argv, but txn input unquotes Go string escapes.
    ctl(
        "txn",
        stdin=txn([], [r'put "nul\x00" "a\x00b"', r'put "nul" "c"', r'put "nul\x00\x00" "d"'], []),
    ),
    ctl("get", "nul", "nul\x01", "--hex"),  # [nul, nul\x01): all three
    ctl("get", "--prefix", "nul", "-w", "json"),
    ctl("txn", "-w", "json", stdin=txn([], [r'get "nul" "nul\x00\x00"'], [])),  # [nul, nul\x00\x00)
    ctl("txn", "-w", "json", stdin=txn([r'value("nul\x00") = "a\x00b"'], [r'get "nul\x00"'], [])),
    # A range end of "\x00" means "every key from the start key on".
    ctl("txn", "-w", "json", stdin=txn([], [r'get "nul\x00" "\x00" --keys-only'], [])),
    ctl("txn", stdin=txn([], [r'del "nul\x00\x00" "\x00" --prev-kv'], [])),
    ctl("del", "nul", "nul\x01", "--prev-kv", "--hex"),
    ctl("del", "--from-key", "", "--prev-kv", "-w", "fields"),
)

LONG_KEYS = scenario(
    "long_keys_and_values_are_stored_whole",
    ctl("put", "k" * 10_000, "v"),
    ctl("put", "k" * 100_000, "w"),
    ctl("put", "long-value", "x" * 100_000),
    ctl("get", "--prefix", "kkk", "--keys-only", "-w", "json"),
    ctl("get", "k" * 10_000, "-w", "fields"),
    ctl("get", "long-value", "--print-value-only"),
    ctl("put", "from-stdin", stdin="y" * 1_000_000),
    ctl("get", "from-stdin", "-w", "json"),
    ctl("del", "--prefix", "k", "--prev-kv", "--hex"),
)

EMPTY_KEY = scenario(
    "empty_key_is_rejected_and_empty_value_is_stored",
    in_formats("put", "", "v"),  # etcd: "key is not provided", InvalidArgument, exit 1
    in_formats("get", ""),
    ctl("del", ""),
    ctl("del", "", "a"),
    ctl("get", "", "a"),
    ctl("put", "e", ""),  # empty value: fine
    in_formats("get", "e"),
    ctl("get", "e", "--print-value-only"),
    ctl("put", "e", "", "--prev-kv", "-w", "fields"),
    ctl("del", "e", "--prev-kv", "-w", "json"),
    ctl("get", "", "--prefix", "-w", "json"),
)

# -- watch -------------------------------------------------------------------------------------
# A watch runs in the background while later steps write; `stop` compares all it printed.

WATCH_KEY = scenario(
    "watch_a_key_prints_its_live_events_in_order",
    ctl("put", "k", "0"),  # rev 2: before the watch, not shown
    start("simple", "watch", "k"),
    start("json", "watch", "k", "-w", "json"),
    ctl("put", "k", "1"),  # rev 3
    ctl("put", "other", "x"),  # rev 4: another key
    ctl("del", "k"),  # rev 5
    ctl("put", "k", "2"),  # rev 6
    ctl("txn", stdin=txn([], ["put k 3", "put other y"], [])),  # rev 7
    stop("simple"),
    stop("json"),
)

WATCH_PREFIX = scenario(
    "watch_a_prefix_or_a_range_sees_every_key_in_it_and_a_txn_in_one_response",
    start("prefix", "watch", "--prefix", "a/"),
    start("range", "watch", "a/b", "a/d", "-w", "json"),
    start("all", "watch", "--prefix", ""),
    ctl("put", "a/a", "1"),  # rev 2
    ctl("put", "b", "1"),  # rev 3
    ctl("txn", stdin=txn([], ["put a/b 2", "put a/c 3", "put a/d 4", "put b 5"], [])),  # rev 4
    ctl("del", "--prefix", "a/"),  # rev 5: four deletes in one revision
    ctl("put", "a", "no slash"),  # rev 6
    stop("prefix"),
    stop("range"),
    stop("all"),
)

WATCH_REV = scenario(
    "watch_from_a_past_revision_replays_history_then_goes_live",
    ctl("put", "k", "1"),  # rev 2
    ctl("put", "k", "2"),  # rev 3
    ctl("del", "k"),  # rev 4
    ctl("put", "j", "x"),  # rev 5
    ctl("put", "k", "3"),  # rev 6
    start("from3", "watch", "k", "--rev", "3"),
    start("from1", "watch", "--prefix", "", "--rev", "1", "-w", "json"),
    start("future", "watch", "k", "--rev", "8"),
    ctl("put", "k", "4"),  # rev 7: live
    ctl("put", "k", "5"),  # rev 8: the first the future watch shows
    stop("from3"),
    stop("from1"),
    stop("future"),
)

WATCH_PREV_KV = scenario(
    "watch_prev_kv_prints_the_value_before_each_event",
    ctl("put", "k", "old"),  # rev 2
    start("simple", "watch", "k", "--prev-kv"),
    start("json", "watch", "--prefix", "k", "--prev-kv", "-w", "json"),
    ctl("put", "k", "new"),  # rev 3
    ctl("put", "k2", "first"),  # rev 4: no previous value
    ctl("del", "k"),  # rev 5
    stop("simple"),
    stop("json"),
    start("replay", "watch", "k", "--prev-kv", "--rev", "2"),
    stop("replay"),
)

WATCH_COMPACTED = scenario(
    "watch_from_a_compacted_revision_is_cancelled_with_the_compact_revision",
    ctl("put", "k", "1"),  # rev 2
    ctl("put", "k", "2"),  # rev 3
    ctl("put", "k", "3"),  # rev 4
    ctl("put", "k", "4"),  # rev 5
    ctl("compact", "4"),
    # etcd: the client sees the cancel and exits on its own ("watch is canceled by the server")
    ctl("watch", "k", "--rev", "2"),
    ctl("watch", "k", "--rev", "3", "-w", "json"),
    # the compaction revision itself is still watchable
    start("at", "watch", "k", "--rev", "4"),
    ctl("put", "k", "5"),  # rev 6
    stop("at"),
)

WATCH_INTERACTIVE = scenario(
    "watch_interactive_creates_watches_and_requests_progress_from_stdin",
    ctl("put", "k", "0"),  # rev 2
    start("i", "watch", "-i"),
    feed("i", "watch k\n"),
    ctl("put", "k", "1"),  # rev 3
    feed("i", "progress\n"),
    feed("i", "nonsense\n"),
    feed("i", "\n"),
    feed("i", "watch\n"),
    ctl("put", "k", "2"),  # rev 4
    stop("i"),
    start("j", "watch", "-i", "-w", "json"),
    feed("j", "watch --prefix p --prev-kv --rev 2\n"),
    ctl("put", "p1", "x"),  # rev 5
    stop("j"),
)

# -- lock and elect -------------------------------------------------------------------------
# etcdctl runs etcd's concurrency recipes in the client (lease, txn, range, watch); the keys it
# prints end in the session's lease ID, random on etcd: captured, then shown as <name>.
LOCK_KEY = r"mylock/([0-9a-f]+)"
ELECTION_KEY = r"myelection/([0-9a-f]+)"

LOCK_RUNS_A_COMMAND = scenario(
    "lock_runs_the_command_while_holding_the_lock_then_releases_it",
    ctl("lock", "mylock", "--", "echo", "done"),  # rev 2 put, rev 3 delete
    # etcd: the command sees the key and the revision it was acquired at (a fencing token)
    ctl(
        "lock",
        "mylock",
        "--",
        "sh",
        "-c",
        "echo $ETCD_LOCK_KEY $ETCD_LOCK_REV",
        capture={"second": LOCK_KEY},
    ),
    ctl("lock", "--ttl", "5", "mylock", "--", "echo", "with a ttl"),
    ctl("lock", "mylock", "--", "false"),  # etcd: "Error: exit status 1", exit 1
    ctl("lock", "mylock", "--", "/nonexistent/command"),
    ctl("lock"),  # etcd: usage error, exit 128
    ctl("get", "--prefix", "mylock/", "-w", "json"),  # every key was released
)

LOCK_WAITS_FOR_A_KILLED_HOLDER = scenario(
    "lock_waiter_gets_the_lock_when_the_killed_holders_lease_expires",
    start("holder", "lock", "--ttl", "2", "mylock"),  # prints its key and holds the lock
    ctl("get", "--prefix", "mylock/", "--keys-only", capture={"holder": LOCK_KEY}),
    start("waiter", "lock", "mylock", "--", "echo", "waiter got it"),
    # the oldest key holds the lock
    ctl("get", "--prefix", "mylock/", "--sort-by", "CREATE", "--limit", "1", "--keys-only"),
    stop("holder"),  # SIGKILL: nobody revokes or keeps alive its 2 s lease
    # queued behind the waiter: returns once the holder's lease expired and the waiter is done
    ctl("lock", "mylock", "--", "echo", "third"),
    stop("waiter"),
    ctl("get", "--prefix", "mylock/", "-w", "json"),
)

ELECT_AND_LISTEN = scenario(
    "elect_prints_the_leader_and_a_listener_sees_the_next_one_when_its_session_ends",
    ctl("elect", "-l"),  # etcd: usage error, exit 128
    start("leader", "elect", "myelection", "proposal"),
    ctl("get", "--prefix", "myelection/", "--keys-only", capture={"leader": ELECTION_KEY}),
    start("listener", "elect", "-l", "myelection"),
    start("candidate", "elect", "myelection", "second"),
    # the leader's session ends (as when its process dies and its lease expires)
    ctl("lease", "revoke", "{{leader}}"),
    stop("candidate", capture={"candidate": ELECTION_KEY}),
    stop("leader"),  # etcd: it notices its session is gone and says so
    stop("listener"),
)


SCENARIOS: tuple[Scenario, ...] = (
    *AUTH_SCENARIOS,
    HASHKV,
    NOSPACE,
    DEFRAG,
    PUT_BASICS,
    PUT_PREV_KV,
    PUT_FROM_STDIN,
    PUT_IGNORE_VALUE,
    PUT_UNKNOWN_LEASE,
    PUT_IGNORE_LEASE,
    PUT_LEASE,
    LEASE_LIFECYCLE,
    LEASE_ERRORS,
    GET_RANGES,
    GET_OUTPUT_SHAPING,
    GET_SORT,
    GET_CONSISTENCY,
    GET_HISTORY,
    GET_REVISION_ERRORS,
    COMPACTION,
    COMPACTION_FORMATS,
    DELETE,
    DELETE_PREV_KV,
    TXN_COMPARES,
    TXN_BRANCHES,
    TXN_INTERACTIVE,
    TXN_LIMITS,
    TXN_GRAMMAR_ERRORS,
    REQUEST_SIZE,
    ODD_KEYS,
    LONG_KEYS,
    EMPTY_KEY,
    WATCH_KEY,
    WATCH_PREFIX,
    WATCH_REV,
    WATCH_PREV_KV,
    WATCH_COMPACTED,
    WATCH_INTERACTIVE,
    LOCK_RUNS_A_COMMAND,
    LOCK_WAITS_FOR_A_KILLED_HOLDER,
    ELECT_AND_LISTEN,
)
