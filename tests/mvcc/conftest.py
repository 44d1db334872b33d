"""Fixtures for the MVCC suites: a store on a real LevelDB directory under tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.mvcc.harness import KV


@pytest.fixture
def kv(tmp_path: Path) -> Iterator[KV]:
    """A fresh store (revision 1), driven through the Applier; closed at teardown."""
    store = KV(tmp_path / "db")
    yield store
    store.close()
