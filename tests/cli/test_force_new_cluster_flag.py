"""--force-new-cluster is etcd's boolean flag: alone, =true/false, ETCD_FORCE_NEW_CLUSTER."""

from __future__ import annotations

from cairn.cli.config import parse


def test_force_new_cluster_is_off_unless_given() -> None:
    assert parse([], environ={}).member.force_new_cluster is False


def test_force_new_cluster_alone_turns_it_on() -> None:
    assert parse(["--force-new-cluster"], environ={}).member.force_new_cluster is True
    assert parse(["--force-new-cluster=false"], environ={}).member.force_new_cluster is False


def test_force_new_cluster_from_the_environment() -> None:
    config = parse([], environ={"ETCD_FORCE_NEW_CLUSTER": "true"})
    assert config.member.force_new_cluster is True
