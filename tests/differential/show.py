"""Print what one server answers to the differential scenarios, step by step (masked).

    .venv/bin/python -m tests.differential.show [--server etcd|cairn] [name-substring ...]

Handy to see etcd's exact output for a scenario while writing the server or a new scenario.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests.differential.runner import Side, printable
from tests.differential.scenarios import SCENARIOS
from tests.support.servers import start_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=("etcd", "cairn"), default="etcd")
    parser.add_argument("names", nargs="*", help="substrings of scenario names (default: all)")
    options = parser.parse_args(argv)
    chosen = [s for s in SCENARIOS if not options.names or any(n in s.name for n in options.names)]
    with tempfile.TemporaryDirectory(prefix="cairn-show-") as tmp:
        for number, scenario in enumerate(chosen):
            server = start_server(
                options.server, Path(tmp) / str(number), extra_args=scenario.server_args
            )
            try:
                side = Side(options.server, server)
                print(f"##### {scenario.name}")
                for index, step in enumerate(scenario.steps, start=1):
                    outcome = side.run(step)
                    print(f"--- step {index}: {step.describe()}")
                    print(f"exit {outcome.returncode}")
                    for name, text in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
                        if text:
                            shown = printable(text)
                            if len(shown) > 2000:
                                shown = shown[:2000] + f"... ({len(shown)} chars)"
                            print(f"[{name}]\n{shown.rstrip(chr(10))}")
            finally:
                server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
