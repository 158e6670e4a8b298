"""The `blockiot` command: `--help` of it and of every subcommand exits 0 with its usage;
the installed script itself starts (one subprocess, so the check does not grow with the
number of subcommands or depend on how busy the machine is)."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from blockiot.tools.cli import build_parser, main


def subcommand_paths(parser: argparse.ArgumentParser, prefix=()) -> list[tuple[str, ...]]:
    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.append(prefix + (name,))
                paths.extend(subcommand_paths(sub, prefix + (name,)))
    return paths


PATHS = [()] + subcommand_paths(build_parser())


def test_every_command_is_there():
    assert {("keygen",), ("pubkey",), ("genesis",), ("verify",), ("demo",), ("bench", "codec"), ("node",),
            ("send", "reading"), ("status",), ("gov", "propose"), ("chain", "readings"), ("radio", "list")} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "blockiot")
def test_help_exits_0_with_its_usage(path, capsys):
    assert main([*path, "--help"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: blockiot") and captured.err == ""


def test_the_installed_command_runs():
    script = Path(sys.executable).parent / "blockiot"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "blockiot.tools.cli"]
    result = subprocess.run(command + ["--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("usage: blockiot"), result.stderr
