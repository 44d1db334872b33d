"""The errors a client can see, with etcd's gRPC status codes and message strings.

Clients (etcdctl, client-go, aetcd) match on these exact strings, so every layer raises one of
these instead of inventing its own text; the API layer turns them into gRPC statuses. The code
is kept as the grpc.StatusCode *name* so that the layers below the API do not import grpc.
"""

from __future__ import annotations

INVALID_ARGUMENT = "INVALID_ARGUMENT"
OUT_OF_RANGE = "OUT_OF_RANGE"
NOT_FOUND = "NOT_FOUND"
RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
UNAVAILABLE = "UNAVAILABLE"
FAILED_PRECONDITION = "FAILED_PRECONDITION"
DATA_LOSS = "DATA_LOSS"


class EtcdError(Exception):
    """An error a client sees; subclasses fix the status code name and etcd's text."""

    code: str = "UNKNOWN"
    text: str = ""

    def __init__(self, text: str | None = None) -> None:
        self.message = text if text is not None else self.text
        super().__init__(self.message)


class ErrEmptyKey(EtcdError):
    code, text = INVALID_ARGUMENT, "etcdserver: key is not provided"


class ErrKeyNotFound(EtcdError):
    code, text = INVALID_ARGUMENT, "etcdserver: key not found"


class ErrValueProvided(EtcdError):
    code, text = INVALID_ARGUMENT, "etcdserver: value is provided"


class ErrLeaseProvided(EtcdError):
    code, text = INVALID_ARGUMENT, "etcdserver: lease is provided"


class ErrTooManyOps(EtcdError):
    code, text = INVALID_ARGUMENT, "etcdserver: too many operations in txn request"


class ErrDuplicateKey(EtcdError):
    code, text = INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request"


class ErrInvalidSortOption(EtcdError):
    code, text = INVALID_ARGUMENT, "etcdserver: invalid sort option"


class ErrRequestTooLarge(EtcdError):
    code, text = INVALID_ARGUMENT, "etcdserver: request is too large"


class ErrCompacted(EtcdError):
    code, text = OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"


class ErrFutureRev(EtcdError):
    code, text = OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"


class ErrLeaseNotFound(EtcdError):
    code, text = NOT_FOUND, "etcdserver: requested lease not found"


class ErrLeaseExist(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: lease already exists"


class ErrLeaseTTLTooLarge(EtcdError):
    code, text = OUT_OF_RANGE, "etcdserver: too large lease TTL"


class ErrNoSpace(EtcdError):
    code, text = RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded"


class ErrCorrupt(EtcdError):
    # What etcd 3.4.23 answers every write while a CORRUPT alarm is active (checked live).
    code, text = DATA_LOSS, "etcdserver: corrupt cluster"


class ErrStopped(EtcdError):
    code, text = UNAVAILABLE, "etcdserver: server stopped"


class ErrTimeout(EtcdError):
    code, text = UNAVAILABLE, "etcdserver: request timed out"


class ErrTimeoutDueToLeaderFail(EtcdError):
    code, text = (
        UNAVAILABLE,
        "etcdserver: request timed out, possibly due to previous leader failure",
    )


class ErrTimeoutDueToConnectionLost(EtcdError):
    code, text = UNAVAILABLE, "etcdserver: request timed out, possibly due to connection lost"


class ErrNoLeader(EtcdError):
    code, text = UNAVAILABLE, "etcdserver: no leader"


class ErrLeaderChanged(EtcdError):
    code, text = UNAVAILABLE, "etcdserver: leader changed"


# Membership and leadership errors, with the codes and texts etcd 3.4.23 answers (checked
# against a real cluster with etcdctl, except where noted).


class ErrMemberNotFound(EtcdError):
    code, text = NOT_FOUND, "etcdserver: member not found"


class ErrMemberExist(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: member ID already exist"


class ErrPeerURLExist(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: Peer URLs already exists"


class ErrMemberNotLearner(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: can only promote a learner member"


class ErrLearnerNotReady(EtcdError):
    code, text = (
        FAILED_PRECONDITION,
        "etcdserver: can only promote a learner member which is in sync with leader",
    )


class ErrNotSupportedForLearner(EtcdError):
    code, text = UNAVAILABLE, "etcdserver: rpc not supported for learner"


class ErrTooManyLearners(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: too many learner members in cluster"


class ErrNotEnoughStartedMembers(EtcdError):
    # Not reproduced live (it needs members that never started); code and text from etcd's
    # error table. A voter that is down answers `ErrUnhealthy` instead (checked live).
    code, text = (
        FAILED_PRECONDITION,
        "etcdserver: re-configuration failed due to not enough started members",
    )


class ErrUnhealthy(EtcdError):
    code, text = UNAVAILABLE, "etcdserver: unhealthy cluster"


class ErrNotLeader(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: not leader"


class ErrBadLeaderTransferee(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: bad leader transferee"


class ErrTimeoutLeaderTransfer(EtcdError):
    code, text = UNAVAILABLE, "etcdserver: request timed out, leader transfer took too long"


class ErrSnapshotAborted(EtcdError):
    """cairn's own: the member's database was replaced (an image from the leader swapped in)
    while a Maintenance.Snapshot stream read it. Retrying takes a new snapshot."""

    code, text = UNAVAILABLE, "etcdserver: snapshot aborted: the database was replaced; retry"


class ErrHashAborted(EtcdError):
    """cairn's own: HashKV or Hash was interrupted again and again (compactions applied or
    the database replaced while it read the history: cairn.member.hashing). etcd holds
    its backend's read lock for the whole hash instead, and stalls the member."""

    code, text = UNAVAILABLE, "etcdserver: hash aborted: the history kept changing; retry"


# Auth errors, with the codes and texts etcd 3.4.23 answers (checked with etcdctl and gRPC).
PERMISSION_DENIED = "PERMISSION_DENIED"
UNAUTHENTICATED = "UNAUTHENTICATED"


class ErrRootUserNotExist(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: root user does not exist"


class ErrRootRoleNotExist(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: root user does not have root role"


class ErrUserAlreadyExist(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: user name already exists"


class ErrUserEmpty(EtcdError):
    code, text = INVALID_ARGUMENT, "etcdserver: user name is empty"


class ErrUserNotFound(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: user name not found"


class ErrRoleAlreadyExist(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: role name already exists"


class ErrRoleNotFound(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: role name not found"


class ErrRoleEmpty(EtcdError):
    code, text = INVALID_ARGUMENT, "etcdserver: role name is empty"


class ErrAuthFailed(EtcdError):
    code, text = (
        INVALID_ARGUMENT,
        "etcdserver: authentication failed, invalid user ID or password",
    )


class ErrPermissionDenied(EtcdError):
    code, text = PERMISSION_DENIED, "etcdserver: permission denied"


class ErrRoleNotGranted(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: role is not granted to the user"


class ErrPermissionNotGranted(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: permission is not granted to the role"


class ErrAuthNotEnabled(EtcdError):
    code, text = FAILED_PRECONDITION, "etcdserver: authentication is not enabled"


class ErrInvalidAuthToken(EtcdError):
    code, text = UNAUTHENTICATED, "etcdserver: invalid auth token"


class ErrInvalidAuthMgmt(EtcdError):
    code, text = INVALID_ARGUMENT, "etcdserver: invalid auth management"


class ErrAuthOldRevision(EtcdError):
    code, text = INVALID_ARGUMENT, "etcdserver: revision of auth store is old"


class ErrPermissionNotGiven(EtcdError):
    # etcd 3.5's answer to a grant without a permission (etcd 3.4.23 crashes on it).
    code, text = INVALID_ARGUMENT, "etcdserver: permission not given"


def unmapped_auth_error(error: EtcdError) -> EtcdError:
    """The error as etcd 3.4's Maintenance service answers it: the auth package's own error,
    never mapped to a gRPC status, so code Unknown and `auth: ...` (e.g. `auth: permission
    denied` for a non-root `endpoint hashkv` or `defrag`)."""
    unmapped = EtcdError("auth: " + error.message.removeprefix("etcdserver: "))
    unmapped.code = "UNKNOWN"
    return unmapped
