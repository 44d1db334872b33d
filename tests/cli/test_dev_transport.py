"""`cairn dev` keeps the transport a directory was first started with: its members stored
their peer URLs, so a switch between TLS and plaintext would start members that cannot reach
each other. The refusal comes before any member is started."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cairn.cli import dev


def _args(directory: Path, *, tls: bool) -> argparse.Namespace:
    return argparse.Namespace(
        dir=str(directory),
        members=1,
        client_port=1,  # never bound: every case here stops before starting members
        tls=tls,
        prometheus_port=0,
        alertmanager_port=0,
    )


def test_a_fresh_directory_has_no_recorded_transport(tmp_path: Path) -> None:
    assert dev.recorded_scheme(tmp_path, ["m1"]) is None


def test_the_marker_file_names_the_transport(tmp_path: Path) -> None:
    (tmp_path / dev.TRANSPORT_FILE).write_text("http\n")
    assert dev.recorded_scheme(tmp_path, ["m1"]) == "http"


def test_an_old_directory_with_member_data_and_no_pki_was_plaintext(tmp_path: Path) -> None:
    (tmp_path / "m1").mkdir()
    assert dev.recorded_scheme(tmp_path, ["m1"]) == "http"


def test_an_old_directory_with_a_pki_folder_was_tls(tmp_path: Path) -> None:
    (tmp_path / "m1").mkdir()
    (tmp_path / "pki").mkdir()
    assert dev.recorded_scheme(tmp_path, ["m1"]) == "https"


@pytest.mark.parametrize(("recorded", "tls"), [("http", True), ("https", False)])
def test_switching_transport_is_refused_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recorded: str, tls: bool
) -> None:
    (tmp_path / dev.TRANSPORT_FILE).write_text(recorded + "\n")
    assert dev.main(_args(tmp_path, tls=tls)) == 2
    err = capsys.readouterr().err
    assert "cannot switch" in err and f"remove {tmp_path}/" in err
    assert not (tmp_path / "m1").exists()
    assert (tmp_path / dev.TRANSPORT_FILE).read_text() == recorded + "\n"
