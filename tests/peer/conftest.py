"""Every peer test also checks that gRPC itself logged no errors (e.g. a handler cancelled
uncleanly on stop), which would otherwise only show up as noise in an operator's log."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_grpc_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING, logger="grpc")
    yield
    errors = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("grpc") and record.levelno >= logging.ERROR
    ]
    assert errors == [], "gRPC logged errors"
