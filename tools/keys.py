"""`blockiot keygen` and `blockiot pubkey`: create a device's Ed25519 identity (key file,
mode 0600, written as `Identity.save` does: never through a link, never over an existing
key without --force), and print the public key of one."""
from __future__ import annotations

from pathlib import Path

from blockiot.chain.crypto import Identity


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "keygen", help="create a device identity (Ed25519 key file)",
        description="Create an Ed25519 key file (mode 0600; missing folders are created, mode 0700) "
                    "and print its public key, which goes into the cluster's genesis TOML. A symbolic "
                    "link at the key's path, or a leftover KEY_FILE.tmp, is refused.",
    )
    parser.add_argument("key_file", type=Path, help="path of the key file to create")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing key file (its old key is lost)")
    parser.set_defaults(func=run)

    show = subparsers.add_parser("pubkey", help="print the public key of a key file",
                                 description="Print the hex public key of an existing key file.")
    show.add_argument("key_file", type=Path)
    show.set_defaults(func=run_show)


def run(args) -> int:
    identity = Identity.generate()
    identity.save(args.key_file, overwrite=args.force)
    print(f"wrote {args.key_file} (mode 600)")
    print(f"public_key = \"{identity.public_key.hex()}\"")
    return 0


def run_show(args) -> int:
    print(Identity.load(args.key_file).public_key.hex())
    return 0
