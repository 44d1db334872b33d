"""`cairn pki`: create the two CAs and issue member and client certificates into a directory.

cairn pki init --dir pki/
cairn pki issue member m1 --dns m1.example --ip 10.0.0.1 --dir pki/
cairn pki issue client admin --dir pki/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cairn import pki
from cairn.pki.certs import DEFAULT_CA_DAYS, DEFAULT_LEAF_DAYS, MIN_RSA_BITS


def _common(parser: argparse.ArgumentParser, days: int) -> None:
    parser.add_argument("--dir", default="pki", help="the PKI directory (default: pki)")
    parser.add_argument(
        "--key-type",
        choices=[k.value for k in pki.KeyType],
        default=pki.KeyType.ECDSA_P256.value,
        help="key algorithm (default: ecdsa-p256)",
    )
    parser.add_argument(
        "--rsa-bits", type=int, default=MIN_RSA_BITS, help=f"RSA key size, >= {MIN_RSA_BITS}"
    )
    parser.add_argument("--days", type=int, default=days, help=f"lifetime (default: {days})")
    parser.add_argument(
        "--force", action="store_true", help="replace existing keys and certificates"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="pki_command", required=True)
    init = actions.add_parser("init", help="create the client CA and the peer CA")
    _common(init, DEFAULT_CA_DAYS)
    issue = actions.add_parser("issue", help="issue a member's or a client's certificates")
    kinds = issue.add_subparsers(dest="kind", required=True)
    member = kinds.add_parser(
        "member", help="server certificate (client CA) and peer certificate (peer CA)"
    )
    member.add_argument("name")
    member.add_argument("--dns", action="append", default=[], help="a DNS SAN (repeatable)")
    member.add_argument("--ip", action="append", default=[], help="an IP SAN (repeatable)")
    _common(member, DEFAULT_LEAF_DAYS)
    client = kinds.add_parser("client", help="a client certificate with CN=NAME (client CA)")
    client.add_argument("name")
    _common(client, DEFAULT_LEAF_DAYS)


def main(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    spec = pki.KeySpec(pki.KeyType(args.key_type), args.rsa_bits)
    try:
        if args.pki_command == "init":
            layout = pki.init(root, spec, args.days, args.force)
            written = [*layout.client_ca, *layout.peer_ca]
        else:
            validity = pki.Validity.days_from_now(args.days)
            if args.kind == "member":
                layout = pki.issue_member(
                    root, args.name, args.dns, args.ip, spec=spec, validity=validity,
                    force=args.force,
                )  # fmt: skip
                written = [*layout.member_server(args.name), *layout.member_peer(args.name)]
            else:
                layout = pki.issue_client(
                    root, args.name, spec=spec, validity=validity, force=args.force
                )
                written = list(layout.client(args.name))
    except pki.PKIError as error:
        print(f"cairn pki: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0
