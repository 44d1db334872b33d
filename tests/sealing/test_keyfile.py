"""--encryption-key-file: the format and every refusal an operator can run into."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from tests.sealing.keys import secret, write_key_file

from cairn.sealing import KeyFileError, load_key_file


def test_a_key_file_gives_every_key_and_the_active_one(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "keys.yaml", "b", {"a": secret(), "b": secret()})
    ring = load_key_file(str(path))
    assert ring.active == "b"
    assert ring.key_ids == {"a", "b"}


def test_active_plaintext_stores_new_records_in_clear(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "keys.yaml", "plaintext", {"a": secret()})
    ring = load_key_file(str(path))
    assert ring.active is None
    assert ring.seal(b"v", b"ctx") == b"v"


@pytest.mark.parametrize("size", [16, 24, 32])
def test_aes_128_192_and_256_bit_secrets_are_accepted(tmp_path: Path, size: int) -> None:
    path = write_key_file(tmp_path / "keys.yaml", "a", {"a": b"\x01" * size})
    assert load_key_file(str(path)).active == "a"


def _refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(KeyFileError) as raised:
        load_key_file(str(path))
    return str(raised.value)


GOOD = base64.b64encode(b"\x02" * 32).decode()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"active: b\nkeys:\n- id: a\n  secret: {GOOD}\n", "active key 'b' is not among"),
        (f"keys:\n- id: a\n  secret: {GOOD}\n", "'active' must name one of the keys"),
        ("active: a\nkeys:\n- id: a\n  secret: not*base64\n", "secret is not base64"),
        (
            f"active: a\nkeys:\n- id: a\n  secret: {base64.b64encode(b'x' * 20).decode()}\n",
            "secret is 20 bytes",
        ),
        (f"active: a\nkeys:\n- id: plaintext\n  secret: {GOOD}\n", "reserved"),
        (f"active: a\nkeys:\n- id: a b\n  secret: {GOOD}\n", "must be 1..64"),
        (
            f"active: a\nkeys:\n- id: a\n  secret: {GOOD}\n- id: a\n  secret: {GOOD}\n",
            "appears twice",
        ),
        (f"active: a\nkeys:\n- id: a\n  key: {GOOD}\n", "exactly the fields"),
        (f"active: a\nkeyz: []\nkeys:\n- id: a\n  secret: {GOOD}\n", "unknown field(s) keyz"),
        ("- just a list\n", "expected a mapping"),
        ("active: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_malformed_key_file_is_refused_with_what_to_fix(
    tmp_path: Path, text: str, problem: str
) -> None:
    assert problem in _refused(tmp_path, text)


def test_a_missing_key_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"keys\.yaml: No such file"):
        load_key_file(str(tmp_path / "keys.yaml"))


def test_a_key_file_readable_by_others_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_key_file(tmp_path / "keys.yaml", "a", {"a": secret()})
    path.chmod(0o644)
    assert load_key_file(str(path)).active == "a"
    assert "make it 0600" in caplog.text
