"""`cairn render`: regenerate dashboards/*.json and alerts/*.yml from server/cairn/observe/.

With --for-scale / --window-scale the alert rules come out shortened (a 10m `for:` at 0.01 is
6s) for live tests; such a render must go to an explicit --out directory, never over the
committed files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cairn.observe import alerts
from cairn.observe.timing import Timing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default=None, help="directory to write into (default: the current directory)"
    )
    parser.add_argument(
        "--for-scale", type=float, default=1.0, help="multiply every alert's `for:` (tests)"
    )
    parser.add_argument(
        "--window-scale",
        type=float,
        default=1.0,
        help="multiply every range window in the alert rules (tests)",
    )
    parser.add_argument(
        "--runbook-base-url",
        default=alerts.RUNBOOK_BASE_URL,
        help="prefix of each alert's runbook_url (default: %(default)s)",
    )


def main(args: argparse.Namespace) -> int:
    from cairn.observe import render  # grafanalib takes ~0.5 s to import: only when rendering

    timing = Timing(for_scale=args.for_scale, window_scale=args.window_scale)
    if not (0 < timing.for_scale <= 1 and 0 < timing.window_scale <= 1):
        print("cairn render: scales must be in (0, 1]", file=sys.stderr)
        return 2
    if not timing.is_production and args.out is None:
        print(
            "cairn render: shortened rules need --out (never over the committed files)",
            file=sys.stderr,
        )
        return 2
    root = Path(args.out or ".")
    for path in render.write(root, render.files(timing, args.runbook_base_url)):
        print(f"wrote {path}")
    return 0
