"""Differential scenarios for auth: users, roles, permissions and what they allow, with etcdctl's
`--user name:password` (every invocation authenticates afresh, so each step also checks
Authenticate). Comments starting with "etcd:" record etcd 3.4.23 behaviour the steps pin down.
"""

from __future__ import annotations

from collections.abc import Iterator

from tests.differential.runner import Step, ctl, scenario, start, stop

ROOT = ("--user", "root:rootpw")
ALICE = ("--user", "alice:pw")


def txn(compares: list[str], success: list[str], failure: list[str]) -> str:
    return "".join("\n".join([*section, ""]) + "\n" for section in (compares, success, failure))


def as_alice(*args: str, stdin: str | None = None) -> Step:
    return ctl(*ALICE, *args, stdin=stdin)


def as_root(*args: str, stdin: str | None = None) -> Step:
    return ctl(*ROOT, *args, stdin=stdin)


def _users_and_roles() -> Iterator[Step]:
    """root (with the root role, added by `auth enable` itself), alice with role reader."""
    yield ctl("user", "add", "root:rootpw")
    yield ctl("role", "get", "root")  # not there yet
    yield ctl("user", "add", "alice:pw", "--interactive=false")
    yield ctl("user", "add", "alice:other")  # user name already exists
    yield ctl("user", "add", "bob", "--interactive=false", stdin="bobpw\n")  # password on stdin
    yield ctl("user", "add", ":pw")  # etcdctl refuses an empty name itself
    yield ctl("role", "add", "reader")
    yield ctl("role", "add", "reader")  # role name already exists
    yield ctl("role", "add", "")  # role name is empty
    yield ctl("role", "grant-permission", "reader", "read", "foo")
    yield ctl("role", "grant-permission", "reader", "read", "--prefix", "pre/")
    yield ctl("role", "grant-permission", "reader", "readwrite", "--from-key", "zz")
    yield ctl("role", "grant-permission", "reader", "write", "k1", "k5")
    yield ctl("role", "grant-permission", "reader", "write", "k1", "k5")  # same again: updated
    yield ctl("role", "grant-permission", "nosuch", "read", "foo")  # role name not found
    yield ctl("role", "grant-permission", "reader", "bogus", "foo")  # etcdctl refuses, 128
    for fmt in ("simple", "json", "fields"):
        yield ctl("role", "get", "reader", "-w", fmt)  # sorted by key
    yield ctl("user", "grant-role", "alice", "reader")
    yield ctl("user", "grant-role", "alice", "reader")  # again: no error
    yield ctl("user", "grant-role", "alice", "nosuch")
    yield ctl("user", "grant-role", "nobody", "reader")
    yield ctl("user", "get", "alice")
    yield ctl("user", "get", "alice", "--detail")
    yield ctl("user", "get", "alice", "-w", "json")
    yield ctl("user", "get", "nobody")
    yield ctl("user", "list")
    yield ctl("user", "list", "-w", "json")
    yield ctl("role", "list")
    yield ctl("put", "foo", "bar")  # rev 2
    yield ctl("put", "k2", "v2")  # rev 3
    yield ctl("put", "pre/a", "1")  # rev 4
    # etcd: `auth enable` meets "root user does not have root role", adds the role, grants it
    # and enables; a second enable already needs a user.
    yield ctl("auth", "enable")
    yield ctl("auth", "enable")
    yield ctl("role", "get", "root", "-w", "json")  # etcd: the root role lists no permissions


AUTH_PERMISSIONS = scenario(
    "auth_users_roles_and_what_each_user_may_read_and_write",
    _users_and_roles(),
    ctl("get", "foo"),  # no user: user name is empty
    as_alice("get", "foo", "--user", "alice:wrong"),
    ctl("--user", "nobody:pw", "get", "foo"),  # authentication failed (exit 2)
    as_alice("get", "foo"),
    as_alice("put", "foo", "x"),  # read only: permission denied
    as_root("put", "foo", "bar2"),  # rev 5
    as_alice("get", "foo", "-w", "json"),
    as_alice("put", "k2", "x"),  # write on [k1, k5)
    as_alice("put", "k2", "y", "--prev-kv"),  # etcd: prev_kv needs READ too
    as_alice("del", "k2", "--prev-kv"),
    as_alice("del", "k2"),
    as_alice("del", "k1", "k5"),  # exactly the granted range
    as_alice("del", "k1", "k6"),  # beyond it
    as_alice("get", "k1", "k5"),  # write-only range
    as_alice("get", "pre/", "--prefix"),
    as_alice("get", "pre", "--prefix"),  # wider than the grant
    as_alice("get", "zz", "--from-key"),
    as_alice("get", "zy", "--from-key"),
    as_alice("put", "zzz", "rw"),  # readwrite from zz on
    as_alice("get", "zzz", "--print-value-only"),
    # txn: READ for every compare and range, WRITE for every put and delete.
    as_alice("txn", stdin=txn(['value("foo") = "bar2"'], ["put k3 v"], ["get foo"])),
    as_alice("txn", stdin=txn(['value("k2") = "bar"'], ["put k3 v"], ["get foo"])),
    as_alice("txn", stdin=txn(['value("foo") = "bar2"'], ["put k3 v", "get k3"], [])),
    as_alice("txn", stdin=txn([], ["get foo", "get pre/a"], [])),
    as_alice("txn", stdin=txn([], ["get foo", "get k2"], [])),
    as_alice("txn", stdin=txn([], ["del k3"], [])),
    as_alice("txn", stdin=txn([], ["del foo"], [])),
    # watch: READ on the watched range; a refused watch is canceled at once (exit 5)
    as_alice("watch", "k2"),
    as_alice("watch", "k2", "-w", "json"),
    as_alice("watch", "pre", "--prefix"),
    start("foo", *ALICE, "watch", "foo"),
    start("pre", *ALICE, "watch", "pre/", "--prefix", "-w", "json"),
    as_root("put", "foo", "seen"),
    as_root("put", "pre/b", "seen too"),
    stop("foo"),
    stop("pre"),
    # auth management and maintenance need root; some of it is open to the user itself
    as_alice("user", "list"),
    as_alice("user", "get", "alice"),
    as_alice("user", "get", "bob"),
    as_alice("role", "get", "reader"),
    as_alice("role", "get", "root"),
    as_alice("user", "passwd", "alice", "--interactive=false", stdin="new\n"),
    as_alice("endpoint", "hashkv"),  # etcd: Unknown "auth: permission denied"
    ctl("endpoint", "hashkv"),
    as_alice("alarm", "list"),
    as_alice("compaction", "2"),  # etcd 3.4: anyone may compact
    ctl("member", "add", "x", "--peer-urls", "http://127.0.0.1:1"),
    as_alice("member", "add", "x", "--peer-urls", "http://127.0.0.1:1"),
    as_alice("lock", "mylock", "--", "echo", "held"),  # the lock's keys need WRITE
    # changes by root
    as_root("user", "passwd", "alice", "--interactive=false", stdin="pw2\n"),
    as_alice("get", "foo"),  # the old password is gone
    ctl("--user", "alice:pw2", "get", "foo"),
    as_root("user", "delete", "root"),  # invalid auth management while enabled
    as_root("role", "delete", "root"),
    as_root("user", "revoke-role", "root", "root"),
    as_root("user", "revoke-role", "alice", "nosuch"),
    as_root("role", "revoke-permission", "reader", "nosuch"),
    as_root("role", "revoke-permission", "reader", "k1"),  # granted as a range, not a key
    as_root("role", "revoke-permission", "reader", "k1", "k5"),
    as_root("role", "get", "reader"),
    as_root("user", "delete", "nobody"),
    as_root("role", "delete", "nobody"),
    as_root("role", "delete", "reader"),  # also revoked from alice
    as_root("user", "get", "alice"),
    ctl("--user", "alice:pw2", "get", "foo"),
    as_root("user", "delete", "bob"),
    as_root("user", "list"),
    as_root("auth", "disable"),
    as_root("auth", "disable"),  # etcd: disabling twice is fine
    ctl("get", "foo"),
    ctl("user", "list"),
)

AUTH_ENABLE_REFUSED = scenario(
    "auth_enable_needs_a_root_user",
    ctl("auth", "enable"),  # root user does not exist
    ctl("user", "add", "root:x"),
    ctl("user", "grant-role", "root", "root"),  # the root role needs no role add
    ctl("user", "get", "root"),
    ctl("role", "list"),
    ctl("auth", "enable"),
    ctl("--user", "root:x", "role", "list"),
    ctl("--user", "root:x", "put", "a", "b"),
    ctl("--user", "root:x", "get", "a"),
)

AUTH_SCENARIOS = (AUTH_PERMISSIONS, AUTH_ENABLE_REFUSED)
