"""`cairn bench` — being written; see the README."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--against-etcd", action="store_true")


def main(args: argparse.Namespace) -> int:
    raise SystemExit("cairn bench: not built yet")
