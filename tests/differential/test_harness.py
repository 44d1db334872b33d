"""The differential harness itself: masking keeps what must match and hides what may differ."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.differential.runner import Step, ctl
from tests.differential.scenarios import SCENARIOS, txn
from tests.support.etcdctl import OutputMasker, normalize_log_line, run_etcdctl
from tests.support.servers import ServerProcess, etcd_path

ETCD_LOG_LINE = (
    '{"level":"warn","ts":"2026-11-21T08:30:22.639Z","caller":"clientv3/retry_interceptor.go:62",'
    '"msg":"retrying of unary invoker failed","target":"endpoint://client-37ed61bf-2b4f/'
    '127.0.0.1:23790","attempt":0,"error":"rpc error: code = InvalidArgument desc = '
    'etcdserver: key is not provided"}'
)


def test_json_header_ids_are_numbered_and_revision_is_kept() -> None:
    masker = OutputMasker()
    out = masker.mask_stdout(
        '{"header":{"cluster_id":3249525,"member_id":33198146,"revision":2,"raft_term":2}}'
    )
    assert out == (
        '{"header":{"cluster_id":<cluster_id#1>,"member_id":<member_id#1>,'
        '"revision":2,"raft_term":<raft_term#1>}}'
    )


def test_a_changed_member_id_gets_a_new_number() -> None:
    masker = OutputMasker()
    first = masker.mask_stdout('{"member_id":111}')
    second = masker.mask_stdout('{"member_id":222}')
    assert (first, second) == ('{"member_id":<member_id#1>}', '{"member_id":<member_id#2>}')


def test_fields_header_ids_are_masked_but_zero_ids_are_not() -> None:
    masker = OutputMasker()
    text = '"ClusterID" : 987\n"MemberID" : 654\n"Revision" : 5\n"RaftTerm" : 2\n"ClusterID" : 0\n'
    assert masker.mask_stdout(text) == (
        '"ClusterID" : <cluster_id#1>\n"MemberID" : <member_id#1>\n"Revision" : 5\n'
        '"RaftTerm" : <raft_term#1>\n"ClusterID" : 0\n'
    )


def test_quoted_field_names_inside_values_are_left_alone() -> None:
    text = '"Value" : "\\"ClusterID\\" : 12"\n'
    assert OutputMasker().mask_stdout(text) == text


def test_client_log_lines_keep_level_msg_and_error_only() -> None:
    assert normalize_log_line(ETCD_LOG_LINE) == (
        '{"error": "rpc error: code = InvalidArgument desc = etcdserver: key is not provided", '
        '"level": "warn", "msg": "retrying of unary invoker failed"}'
    )
    assert normalize_log_line("Error: etcdserver: key is not provided") == (
        "Error: etcdserver: key is not provided"
    )


def test_go_panic_stack_is_reduced_to_its_first_line() -> None:
    stderr = "panic: bad value\n\ngoroutine 1 [running]:\nmain.f(0xc00003c960)\n\tx.go:1 +0x385\n"
    assert OutputMasker().mask_stderr(stderr) == "panic: bad value\n<go stack trace>\n"


def test_go_panic_signal_line_is_kept_and_the_stack_reduced() -> None:
    stderr = (
        "panic: runtime error: invalid memory address or nil pointer dereference\n"
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0xb9181e]\n\n"
        "goroutine 1 [running]:\nmain.f(0xc00003c960)\n\tx.go:1 +0x385\n"
    )
    assert OutputMasker().mask_stderr(stderr) == (
        "panic: runtime error: invalid memory address or nil pointer dereference\n"
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0xb9181e]\n"
        "<go stack trace>\n"
    )


def test_alarm_member_ids_are_numbered_with_the_header_ids() -> None:
    masker = OutputMasker()
    out = masker.mask_stdout(
        '{"header":{"member_id":77}}\nmemberID:77 alarm:NOSPACE \n{"alarms":[{"memberID":78}]}'
    )
    assert out == (
        '{"header":{"member_id":<member_id#1>}}\nmemberID:<member_id#1> alarm:NOSPACE \n'
        '{"alarms":[{"memberID":<member_id#2>}]}'
    )


def test_captured_lease_ids_are_replaced_in_hex_and_decimal() -> None:
    masker = OutputMasker()
    masker.add_replacement("694d7a", "<lease>")
    masker.add_replacement(str(0x694D7A), "<lease>")
    out = masker.mask_stdout('lease 694d7a granted\n{"lease":6901114}\n"Lease" : 69011140\n')
    assert out == 'lease <lease> granted\n{"lease":<lease>}\n"Lease" : 69011140\n'


def test_hashkv_hashes_are_numbered_in_every_output_format() -> None:
    masker = OutputMasker()
    masker.add_replacement("127.0.0.1:2379", "<endpoint>")
    out = masker.mask_stdout(
        '[{"Endpoint":"127.0.0.1:2379","HashKV":{"hash":11,"compact_revision":-1}}]\n'
        "127.0.0.1:2379, 22\n"
        '"Hash" : 22\n'
    )
    assert out == (
        '[{"Endpoint":"<endpoint>","HashKV":{"hash":<hash#1>,"compact_revision":-1}}]\n'
        "<endpoint>, <hash#2>\n"
        '"Hash" : <hash#2>\n'
    )


def test_hashkv_table_hash_column_width_is_masked() -> None:
    masker = OutputMasker()
    masker.add_replacement("127.0.0.1:2379", "<endpoint>")
    table = (
        "+----------------+------------+\n"
        "|    ENDPOINT    |    HASH    |\n"
        "+----------------+------------+\n"
        "| 127.0.0.1:2379 | 1084519789 |\n"
        "+----------------+------------+\n"
    )
    narrow = (
        "+----------------+------+\n"
        "|    ENDPOINT    | HASH |\n"
        "+----------------+------+\n"
        "| 127.0.0.1:2379 |   42 |\n"
        "+----------------+------+\n"
    )
    masked = masker.mask_stdout(table)
    assert masked == masker.mask_stdout(narrow).replace("<hash#2>", "<hash#1>")
    assert "| <endpoint> | <hash#1> |" in masked


def test_numbers_that_are_not_hashkv_hashes_are_left_alone() -> None:
    text = "127.0.0.1:2379, 8e9e05c52164694d, 3.4.23, 20 kB, true, false, 2, 6, 6, \nk, 5\n"
    masker = OutputMasker()
    masker.add_replacement("127.0.0.1:2379", "<endpoint>")
    assert masker.mask_stdout(text) == text.replace("127.0.0.1:2379", "<endpoint>")


def test_txn_input_ends_every_section_with_an_empty_line() -> None:
    assert txn(['value("a") = "1"'], ["put a 2", "get a"], []) == (
        'value("a") = "1"\n\nput a 2\nget a\n\n\n'
    )


def test_scenario_names_are_unique_identifiers() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names))
    assert all(name.isidentifier() for name in names)
    assert all(isinstance(step, Step) for s in SCENARIOS for step in s.steps)


def test_step_description_escapes_control_characters() -> None:
    assert ctl("put", "a\x01", stdin="x\ny").describe() == (
        "etcdctl put 'a\\x01'  <<< stdin (3 bytes): x\\ny"
    )
    assert ctl("put", "big", "v" * 1002).describe() == "etcdctl put big vvvvvvvvvvvv...(1002 bytes)"


@pytest.mark.slow
@pytest.mark.etcd
def test_a_server_killed_with_sigkill_restarts_on_the_same_data_and_ports(
    etcd_binaries: None, tmp_path: Path
) -> None:
    assert etcd_path() is not None
    server = ServerProcess("etcd", tmp_path / "etcd").start()
    try:
        url, first_pid = server.client_url, server.pid
        assert run_etcdctl(url, ["put", "durable", "yes"]).returncode == 0
        assert server.kill() == -9
        server.start()
        assert (server.client_url, server.running) == (url, True)
        assert server.pid != first_pid
        result = run_etcdctl(url, ["get", "durable", "--print-value-only"])
        assert result.stdout == "yes\n"
        assert server.log_path.read_text().count("=== ") == 2
    finally:
        assert server.stop() in (0, -15)
