"""`cairn dev` (what `make cluster` runs): a local cluster on loopback for trying cairn out."""

from __future__ import annotations

import argparse
import asyncio
import os

from cairn.cli import config as serve_config
from cairn.cli import logs
from cairn.cli.serve import run


def main(args: argparse.Namespace) -> int:
    name = "m1"
    client = f"http://127.0.0.1:{args.client_port}"
    peer = f"http://127.0.0.1:{args.peer_port}"
    data_dir = os.path.join(args.dir, name)
    config = serve_config.parse(
        serve_config.single_member_flags(name, data_dir, client, peer), environ={}
    )
    logs.setup(config.log_level)
    print(
        "cairn dev: starting ONE member (clustering arrives with the Raft issue).\n"
        f"  data:     {data_dir}\n"
        f"  endpoint: {client}\n"
        "  try:      ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:"
        f"{args.client_port} put foo bar\n"
        "            ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:"
        f"{args.client_port} get foo -w json\n"
        "  stop:     Ctrl-C",
        flush=True,
    )
    return asyncio.run(run(config))
