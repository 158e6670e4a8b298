"""The installed `blockiot` command: `--help` of it and of every subcommand exits 0."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from blockiot.tools.cli import build_parser


def subcommand_paths(parser: argparse.ArgumentParser, prefix=()) -> list[tuple[str, ...]]:
    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.append(prefix + (name,))
                paths.extend(subcommand_paths(sub, prefix + (name,)))
    return paths


def blockiot_command() -> list[str]:
    script = Path(sys.executable).parent / "blockiot"
    return [str(script)] if script.exists() else [sys.executable, "-m", "blockiot.tools.cli"]


def test_help_of_every_subcommand_exits_0():
    paths = subcommand_paths(build_parser())
    assert {("keygen",), ("pubkey",), ("genesis",), ("verify",), ("demo",), ("bench", "codec")} <= set(paths)
    for path in [()] + paths:
        result = subprocess.run(blockiot_command() + [*path, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (path, result.stderr)
        assert result.stdout.startswith("usage: blockiot"), path
        assert result.stderr == "", (path, result.stderr)
