"""`cairn serve` reads etcd's flags, ETCD_* variables and YAML config files like etcd does."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.cli.config import ConfigError, parse


def test_defaults_are_etcds() -> None:
    config = parse([], environ={})
    assert config.member.name == "default"
    assert config.member.data_dir == "default.etcd"
    assert config.listen_client_urls == ["http://localhost:2379"]
    assert config.member.initial_cluster == {"default": ["http://localhost:2380"]}
    assert config.member.initial_cluster_token == "etcd-cluster"
    assert config.member.max_request_bytes == 1536 * 1024
    assert config.member.max_txn_ops == 128


def test_data_dir_defaults_to_name_dot_etcd() -> None:
    assert parse(["--name", "m7"], environ={}).member.data_dir == "m7.etcd"


def test_named_member_without_initial_cluster_forms_a_cluster_of_itself() -> None:
    config = parse(
        ["--name", "m1", "--initial-advertise-peer-urls", "http://127.0.0.1:9380"], environ={}
    )
    assert config.member.initial_cluster == {"m1": ["http://127.0.0.1:9380"]}


def test_flags_accept_equals_form() -> None:
    config = parse(["--name=m2", "--max-request-bytes=4096"], environ={})
    assert (config.member.name, config.member.max_request_bytes) == ("m2", 4096)


def test_environment_variable_fills_a_flag_not_given() -> None:
    config = parse([], environ={"ETCD_NAME": "from-env", "ETCD_MAX_TXN_OPS": "64"})
    assert config.member.name == "from-env"
    assert config.member.max_txn_ops == 64


def test_flag_and_environment_variable_together_is_an_error() -> None:
    with pytest.raises(ConfigError, match="conflicting environment variable 'ETCD_NAME'"):
        parse(["--name", "a"], environ={"ETCD_NAME": "b"})


def test_config_file_in_etcd_yaml_form(tmp_path: Path) -> None:
    path = tmp_path / "etcd.yml"
    path.write_text(
        "name: yaml-member\n"
        "data-dir: /var/lib/cairn\n"
        "listen-client-urls: http://127.0.0.1:3379,http://127.0.0.2:3379\n"
        "initial-cluster: yaml-member=http://127.0.0.1:3380\n"
        "max-request-bytes: 2048\n"
    )
    config = parse(["--config-file", str(path), "--name", "ignored"], environ={})
    assert config.member.name == "yaml-member"
    assert config.member.data_dir == "/var/lib/cairn"
    assert config.listen_client_urls == ["http://127.0.0.1:3379", "http://127.0.0.2:3379"]
    assert config.member.max_request_bytes == 2048


def test_config_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        parse(["--config-file", str(path)], environ={})


def test_malformed_initial_cluster_is_refused() -> None:
    with pytest.raises(ConfigError, match="name=peer-url"):
        parse(["--initial-cluster", "m1"], environ={})


def test_non_url_listen_address_is_refused() -> None:
    with pytest.raises(ConfigError, match="listen-client-urls"):
        parse(["--listen-client-urls", "127.0.0.1:2379"], environ={})


def test_unknown_initial_cluster_state_is_refused() -> None:
    with pytest.raises(ConfigError, match="initial-cluster-state"):
        parse(["--initial-cluster-state", "maybe"], environ={})


def test_non_integer_environment_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="ETCD_MAX_REQUEST_BYTES"):
        parse([], environ={"ETCD_MAX_REQUEST_BYTES": "lots"})


def test_snapshot_catchup_entries_defaults_to_etcds_5000() -> None:
    assert parse([], environ={}).snapshot_catch_up_entries == 5000


def test_snapshot_catchup_entries_flag_is_carried() -> None:
    config = parse(["--experimental-snapshot-catchup-entries=10"], environ={})
    assert config.snapshot_catch_up_entries == 10


def test_snapshot_catchup_entries_from_environment_variable() -> None:
    environ = {"ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES": "250"}
    assert parse([], environ=environ).snapshot_catch_up_entries == 250


def test_snapshot_catchup_entries_from_config_file(tmp_path: Path) -> None:
    path = tmp_path / "etcd.yml"
    path.write_text("experimental-snapshot-catchup-entries: 42\nsnapshot-count: 100\n")
    config = parse(["--config-file", str(path)], environ={})
    assert config.snapshot_catch_up_entries == 42
    assert config.member.snapshot_count == 100


def test_negative_snapshot_catchup_entries_is_refused() -> None:
    with pytest.raises(ConfigError, match="experimental-snapshot-catchup-entries"):
        parse(["--experimental-snapshot-catchup-entries=-1"], environ={})


def test_watch_progress_notify_interval_defaults_to_etcds_ten_minutes() -> None:
    assert parse([], environ={}).watch_progress_notify_interval_s == 600.0


def test_watch_progress_notify_interval_takes_a_go_duration() -> None:
    config = parse(["--experimental-watch-progress-notify-interval=1m30.5s"], environ={})
    assert config.watch_progress_notify_interval_s == pytest.approx(90.5)
    environ = {"ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL": "250ms"}
    assert parse([], environ=environ).watch_progress_notify_interval_s == pytest.approx(0.25)


def test_watch_progress_notify_interval_in_a_config_file_is_nanoseconds(tmp_path: Path) -> None:
    path = tmp_path / "etcd.yml"
    path.write_text("experimental-watch-progress-notify-interval: 2000000000\n")
    config = parse(["--config-file", str(path)], environ={})
    assert config.watch_progress_notify_interval_s == pytest.approx(2.0)


def test_a_malformed_watch_progress_notify_interval_is_refused() -> None:
    with pytest.raises(ConfigError, match="experimental-watch-progress-notify-interval"):
        parse(["--experimental-watch-progress-notify-interval=10x"], environ={})


def test_encryption_key_file_is_off_by_default() -> None:
    assert parse([], environ={}).member.encryption_key_file == ""


def test_encryption_key_file_flag_is_carried() -> None:
    config = parse(["--encryption-key-file=/etc/cairn/keys.yaml"], environ={})
    assert config.member.encryption_key_file == "/etc/cairn/keys.yaml"


def test_encryption_key_file_variable_is_cairns_own_not_etcds() -> None:
    config = parse([], environ={"CAIRN_ENCRYPTION_KEY_FILE": "/k.yaml"})
    assert config.member.encryption_key_file == "/k.yaml"
    assert (
        parse([], environ={"ETCD_ENCRYPTION_KEY_FILE": "/k.yaml"}).member.encryption_key_file == ""
    )


def test_encryption_key_file_flag_and_variable_together_is_an_error() -> None:
    with pytest.raises(ConfigError, match="'CAIRN_ENCRYPTION_KEY_FILE' is shadowed"):
        parse(["--encryption-key-file=/a"], environ={"CAIRN_ENCRYPTION_KEY_FILE": "/b"})


def test_encryption_key_file_from_config_file(tmp_path: Path) -> None:
    path = tmp_path / "etcd.yml"
    path.write_text("name: m1\nencryption-key-file: /etc/cairn/keys.yaml\n")
    config = parse(["--config-file", str(path)], environ={})
    assert config.member.encryption_key_file == "/etc/cairn/keys.yaml"


def test_auto_compaction_and_corruption_checks_are_off_by_default() -> None:
    config = parse([], environ={})
    assert not config.auto_compaction.enabled
    assert (config.initial_corrupt_check, config.corrupt_check_interval_s) == (False, 0.0)


def test_auto_compaction_flags_are_read_as_etcd_reads_them() -> None:
    config = parse(
        ["--auto-compaction-mode=revision", "--auto-compaction-retention=1000"], environ={}
    )
    assert (config.auto_compaction.mode, config.auto_compaction.revisions) == ("revision", 1000)
    from_env = parse([], environ={"ETCD_AUTO_COMPACTION_RETENTION": "2"})
    assert from_env.auto_compaction.period_s == 7200.0


def test_corruption_check_flags() -> None:
    config = parse(
        ["--experimental-initial-corrupt-check", "--experimental-corrupt-check-time=2h"],
        environ={},
    )
    assert (config.initial_corrupt_check, config.corrupt_check_interval_s) == (True, 7200.0)


def test_bad_auto_compaction_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match='unknown auto-compaction-mode "sometimes"'):
        parse(["--auto-compaction-mode=sometimes"], environ={})


def test_config_file_takes_etcds_yaml_for_the_operator_flags(tmp_path: Path) -> None:
    path = tmp_path / "etcd.yml"
    path.write_text(
        "auto-compaction-mode: revision\n"
        "auto-compaction-retention: '500'\n"
        "experimental-initial-corrupt-check: true\n"
        "experimental-corrupt-check-time: 7200000000000\n"
    )
    config = parse(["--config-file", str(path)], environ={})
    assert config.auto_compaction.revisions == 500
    assert (config.initial_corrupt_check, config.corrupt_check_interval_s) == (True, 7200.0)
