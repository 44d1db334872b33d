"""With --client-cert-auth, a client certificate's common name is the auth user when no token
is sent, as in etcd: checked with etcdctl against `cairn serve` and etcd 3.4.23 side by side,
same `cairn pki` certificates (CN=reader, CN=admin), same users and roles.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from tests.support.etcdctl import CtlResult, run_etcdctl
from tests.support.servers import ServerKind, ServerProcess, etcd_path
from tests.support.tls import CTL_TIMEOUTS, ClusterPKI, build_pki

from cairn import pki

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(
        etcd_path() is None or shutil.which("etcdctl") is None, reason="needs etcd and etcdctl"
    ),
]

SETUP = (
    ("user", "add", "root:rootpw"),
    ("role", "add", "root"),
    ("user", "grant-role", "root", "root"),
    ("user", "add", "reader:pw"),
    ("role", "add", "ro"),
    ("role", "grant-permission", "ro", "read", "foo"),
    ("user", "grant-role", "reader", "ro"),
    ("put", "foo", "bar"),
    ("auth", "enable"),
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    built = build_pki(tmp_path_factory.mktemp("tls"))
    pki.issue_client(built.layout.root, "reader")
    return built


@pytest.fixture(scope="module")
def servers(
    certs: ClusterPKI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[ServerKind, ServerProcess]]:
    base = tmp_path_factory.mktemp("servers")
    started: dict[ServerKind, ServerProcess] = {}
    try:
        for kind in ("cairn", "etcd"):
            server = ServerProcess(
                kind,  # type: ignore[arg-type]
                base / kind,
                name="m1",
                scheme="https",
                extra_args=certs.server_flags("m1"),
                ctl_flags=[*certs.ctl_flags(), *CTL_TIMEOUTS],
            ).start()
            started[kind] = server  # type: ignore[index]
            for args in SETUP:
                done = ctl(server, certs.ctl_flags("admin"), *args)
                assert done.returncode == 0, (kind, args, done.stderr)
        yield started
    finally:
        for server in started.values():
            server.stop()


def ctl(server: ServerProcess, flags: list[str], *args: str) -> CtlResult:
    endpoint = f"127.0.0.1:{server.client_port}"
    return run_etcdctl(endpoint, list(args), extra_global_flags=[*CTL_TIMEOUTS, *flags])


def seen(result: CtlResult) -> tuple[int, str]:
    """Exit status and what a script reads: stdout, or the final `Error:` line."""
    if result.returncode == 0:
        return 0, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    return result.returncode, errors[-1] if errors else result.stderr


def both(servers: dict[ServerKind, ServerProcess], flags: list[str], *args: str) -> tuple[int, str]:
    cairn, etcd = (seen(ctl(servers[k], flags, *args)) for k in ("cairn", "etcd"))
    assert cairn == etcd
    return cairn


def test_the_certificates_common_name_is_the_user_without_a_token(
    servers: dict[ServerKind, ServerProcess], certs: ClusterPKI
) -> None:
    reader = certs.ctl_flags("reader")
    assert both(servers, reader, "get", "foo") == (0, "foo\nbar\n")
    assert both(servers, reader, "put", "foo", "x") == (1, "Error: etcdserver: permission denied")
    assert both(servers, reader, "user", "list") == (1, "Error: etcdserver: permission denied")


def test_a_common_name_that_is_no_user_gets_nothing(
    servers: dict[ServerKind, ServerProcess], certs: ClusterPKI
) -> None:
    admin = certs.ctl_flags("admin")  # CN=admin: no such user
    assert both(servers, admin, "get", "foo") == (1, "Error: etcdserver: permission denied")
    assert both(servers, admin, "user", "list") == (1, "Error: etcdserver: user name not found")


def test_a_token_wins_over_the_certificate(
    servers: dict[ServerKind, ServerProcess], certs: ClusterPKI
) -> None:
    as_root = [*certs.ctl_flags("reader"), "--user=root:rootpw"]
    assert both(servers, as_root, "put", "foo", "by-root") == (0, "OK\n")
    assert both(servers, as_root, "user", "list") == (0, "reader\nroot\n")
