"""Regenerate the Python protobuf and gRPC modules from cairn's .proto files.

Run ``python -m cairn.proto.generate`` (``make proto``) after editing any ``.proto`` file here.
The generated ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` files are committed so that an
installed cairn never needs protoc; a test regenerates them into a temporary directory with
:func:`generate_into` and fails when the committed copies have drifted from their sources.

protoc runs with ``server/`` as its only include root, so the sources import each other as
``cairn/proto/<name>.proto`` and the generated code imports ``from cairn.proto import ...``.
The output depends only on the .proto sources and the pinned grpcio-tools version, never on
the working directory or absolute paths, which is what makes the drift test meaningful.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent
"""This package's directory: the .proto sources and the committed generated modules."""

SOURCE_ROOT = PROTO_DIR.parent.parent
"""``server/``: protoc's include root, so that import paths read ``cairn/proto/<name>.proto``."""

GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
"""File name endings of everything this script writes (and may therefore delete)."""


class ProtocError(RuntimeError):
    """protoc rejected the sources; its own diagnostics were already printed to stderr."""


def proto_sources() -> list[Path]:
    """All .proto files of the package, sorted so protoc sees them in a stable order."""
    return sorted(PROTO_DIR.glob("*.proto"))


def is_generated(path: Path) -> bool:
    """Whether ``path`` names a file this script produces (as opposed to a hand-written one)."""
    return path.name.endswith(GENERATED_SUFFIXES)


def generate_into(directory: Path) -> list[Path]:
    """Generate every module for every .proto source, flat into ``directory``.

    protoc mirrors the include-relative layout (``cairn/proto/...``) under its output
    directory, so it writes into a staging directory first and the files are then moved up,
    giving the same flat layout as the package. Files whose content is unchanged are not
    rewritten, so their mtimes survive a no-op regeneration. Returns the written paths, sorted.
    """
    directory.mkdir(parents=True, exist_ok=True)
    sources = proto_sources()
    with tempfile.TemporaryDirectory(prefix="cairn-protoc-") as staging_name:
        staging = Path(staging_name)
        args = [
            "grpc_tools.protoc",
            f"--proto_path={SOURCE_ROOT}",
            f"--python_out={staging}",
            f"--pyi_out={staging}",
            f"--grpc_python_out={staging}",
            *(str(source) for source in sources),
        ]
        status = protoc.main(args)
        if status != 0:
            raise ProtocError(f"protoc exited with status {status}")
        staged_dir = staging / PROTO_DIR.relative_to(SOURCE_ROOT)
        written = []
        for staged in sorted(staged_dir.iterdir()):
            target = directory / staged.name
            content = staged.read_bytes()
            if not target.exists() or target.read_bytes() != content:
                shutil.copyfile(staged, target)
            written.append(target)
    return written


def generate() -> list[Path]:
    """Regenerate the committed modules in place and delete ones whose source is gone.

    Removing stale outputs matters because a module left behind for a deleted .proto would
    still import fine and silently keep serving an outdated schema.
    """
    written = set(generate_into(PROTO_DIR))
    for path in sorted(PROTO_DIR.iterdir()):
        if is_generated(path) and path not in written:
            path.unlink()
    return sorted(written)


def main() -> int:
    """Entry point for ``python -m cairn.proto.generate``."""
    try:
        written = generate()
    except ProtocError as exc:
        print(f"cairn.proto.generate: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path.relative_to(SOURCE_ROOT.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
