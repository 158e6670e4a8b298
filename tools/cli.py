"""The `blockiot` command: one argparse front-end, each subcommand registered by its own module.

A subcommand module exposes `register(subparsers)`, which adds its parser and sets
`func` to a callable taking the parsed args and returning an exit code. User
mistakes raise `UserError`, one of the project's errors (`BlockIoTError`), whose
messages are meant for the user: `main` prints one on stderr and exits 2, never a
traceback. Options are checked as they are parsed (`blockiot.tools.options`); a usage
mistake also exits 2.

When the reader of stdout goes away (`blockiot ... | head -1`), `main` stops quietly
with status 141, what a shell shows for a program ended by SIGPIPE.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import select
import sys

from blockiot.radio.errors import BlockIoTError

# Modules under blockiot.tools that add subcommands, in the order `--help` lists them.
SUBCOMMAND_MODULES = [
    "demo",
    "keys",
    "genesis",
    "verify",
    "chainview",
    "bench",
    "radio",
    "airtime",
    "contract",
    "sim",
    "node",
    "send",
    "status",
    "gov",
]


EXIT_BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE


class UserError(BlockIoTError):
    """A mistake by the person at the keyboard: printed plainly, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blockiot",
        description="BlockIoT: a lightweight blockchain for IoT devices over LoRa mesh radio.",
    )
    parser.add_argument("--version", action="version",
                        version=f"blockiot {importlib.metadata.version('blockiot')}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"blockiot.tools.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `blockiot` command line; return its exit status."""
    try:
        status = _run(argv)
        sys.stdout.flush()  # now, so that a closed pipe is caught here and not at exit
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        # Nothing reads our output any more: drop what is left instead of failing again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return status


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage mistake argparse has printed
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BlockIoTError as exc:  # the project's errors (UserError among them)
        if not exc.user_facing:
            raise
        return _refused(args, exc)
    except Exception as exc:  # hil/sim/fieldsim.py's SimConfigError, until it derives from BlockIoTError
        if not getattr(exc, "user_facing", False):
            raise
        return _refused(args, exc)


def _refused(args, exc: Exception) -> int:
    """Print a user-facing error plainly, as `blockiot COMMAND: message`; exit status 2."""
    print(f"blockiot {args.command}: {exc}", file=sys.stderr)
    return 2


def _stdout_closed() -> bool:
    """Whether the reader of stdout has gone (its pipe reports an error or hang-up), so a
    broken pipe elsewhere, such as a socket to a radio, is not mistaken for it."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
    except (AttributeError, OSError, ValueError):  # no poll(), or stdout is no file
        return False
    return any(events & (select.POLLERR | select.POLLHUP) for _fd, events in poller.poll(0))


if __name__ == "__main__":
    # Run through the package module, so `python -m blockiot.tools.cli` and the installed
    # command share one UserError class (a second copy of this module would not match).
    sys.exit(importlib.import_module("blockiot.tools.cli").main())
