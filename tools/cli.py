"""The `blockiot` command: one argparse front-end, each subcommand registered by its own module.

A subcommand module exposes `register(subparsers)`, which adds its parser and sets
`func` to a callable taking the parsed args and returning an exit code. User
mistakes raise `UserError` (or a project error carrying a clear message): `main`
prints it on stderr and exits 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Modules under blockiot.tools that add subcommands, in the order `--help` lists them.
SUBCOMMAND_MODULES = [
    "demo",
    "keys",
    "genesis",
    "verify",
    "bench",
    "radios",
    "radio",
    "airtime",
    "contract",
    "sim",
    "node",
]


class UserError(Exception):
    """A mistake by the person at the keyboard: printed plainly, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blockiot",
        description="BlockIoT: a lightweight blockchain for IoT devices over LoRa mesh radio.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"blockiot.tools.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except UserError as exc:
        print(f"blockiot {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # project errors carry a user-facing message
        if getattr(exc, "user_facing", False):
            print(f"blockiot {args.command}: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    # Run through the package module, so `python -m blockiot.tools.cli` and the installed
    # command share one UserError class (a second copy of this module would not match).
    sys.exit(importlib.import_module("blockiot.tools.cli").main())
