"""Operator's entry to the test hosts: `python -m tests.hosts base|up|down` (as root).

python -m tests.hosts base                 # build (or find) the cached Debian tree
python -m tests.hosts up m1 m2 m3 mon      # boot hosts; prints an inventory snippet
python -m tests.hosts down                 # tear down every fleet this tool made
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.hosts import fleet as fleet_module
from tests.hosts.base import base_tree


def _up(args: argparse.Namespace) -> int:
    fleet = fleet_module.create(args.names, subnet=args.subnet, tag=args.tag)
    print(
        f"# fleet in {fleet.run_dir} (bridge {fleet.bridge}, control node {fleet.control_address})"
    )
    for host in fleet.hosts:
        print(
            f"{host.name} ansible_host={host.address} ansible_user=root "
            f"ansible_ssh_private_key_file={fleet.ssh_key}"
        )
    print(f"# tear down: python -m tests.hosts down --tag {args.tag}")
    return 0


def _down(args: argparse.Namespace) -> int:
    pattern = f"fleet-{args.tag}" if args.tag else "fleet-*"
    for run_dir in sorted(Path(fleet_module.RUN_ROOT).glob(pattern)):
        if (run_dir / "state.json").exists():
            fleet_module.teardown(fleet_module.Fleet.load(run_dir))
            print(f"removed {run_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hosts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("base", help="build or find the cached base tree").set_defaults(
        func=lambda _args: print(base_tree()) or 0
    )
    up = commands.add_parser("up", help="boot hosts on a new bridge")
    up.add_argument("names", nargs="+")
    up.add_argument("--subnet", default=fleet_module.DEFAULT_SUBNET)
    up.add_argument("--tag", default="op", help="names the fleet (bridge cairnbrTAG)")
    up.set_defaults(func=_up)
    down = commands.add_parser("down", help="tear down fleets (all, or --tag)")
    down.add_argument("--tag")
    down.set_defaults(func=_down)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
