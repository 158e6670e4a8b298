"""`blockiot` itself: --version, usage mistakes and the project's errors as exit status 2,
and a closed stdout (`blockiot ... | head -1`) ending the command quietly."""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from blockiot.chain.errors import KeyFileError
from blockiot.hil.rig import RigError
from blockiot.radio.errors import FrameError
from blockiot.tools import airtime
from blockiot.tools.cli import EXIT_BROKEN_PIPE, UserError, main

REPO = Path(__file__).resolve().parents[2]
RULE = REPO / "examples" / "contracts" / "irrigation.rule"


def blockiot_command() -> list[str]:
    script = Path(sys.executable).parent / "blockiot"
    return [str(script)] if script.exists() else [sys.executable, "-m", "blockiot.tools.cli"]


def test_version_prints_the_installed_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"blockiot {importlib.metadata.version('blockiot')}\n"


def test_version_of_the_installed_command():
    result = subprocess.run(blockiot_command() + ["--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("blockiot ") and result.stdout.split()[1][0].isdigit()


def test_a_usage_mistake_is_returned_as_status_2(capsys):
    assert main(["no-such-command"]) == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "error",
    [UserError("a mistake"), KeyFileError("a mistake"), FrameError("a mistake"), RigError("a mistake")],
    ids=lambda e: type(e).__name__,
)
def test_every_project_error_is_one_line_on_stderr_and_status_2(monkeypatch, capsys, error):
    """tools, chain, radio and hil errors share one root, BlockIoTError, which the CLI catches."""
    def fail(args):
        raise error
    monkeypatch.setattr(airtime, "run", fail)
    assert main(["airtime", "--bytes", "80"]) == 2
    assert capsys.readouterr().err == "blockiot airtime: a mistake\n"


def test_an_error_that_is_not_the_projects_is_not_hidden(monkeypatch):
    def fail(args):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(airtime, "run", fail)
    with pytest.raises(ZeroDivisionError):
        main(["airtime", "--bytes", "80"])


def run_with_stdout_closed(args: list[str]) -> subprocess.CompletedProcess:
    """Run blockiot with stdout a pipe nobody reads: every write to it fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(blockiot_command() + args, stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ["contract", "compile", str(RULE)],
        ["airtime", "--bytes", "80"],
    ],
)
def test_a_closed_stdout_ends_the_command_quietly(args):
    result = run_with_stdout_closed(args)
    assert result.stderr == ""
    assert result.returncode == EXIT_BROKEN_PIPE


def test_a_closed_stdout_after_a_user_error_still_reports_the_error():
    result = run_with_stdout_closed(["pubkey", "/nonexistent/gw.key"])
    assert result.returncode == 2
    assert "blockiot pubkey: key file /nonexistent/gw.key does not exist" in result.stderr


def test_a_broken_pipe_that_is_not_stdout_is_not_hidden():
    """A peer that hangs up (a socket to a radio) must not pass for `| head`."""
    script = (
        "import sys\n"
        "from blockiot.tools import radio\n"
        "def hang_up():\n"
        "    raise BrokenPipeError(32, 'Broken pipe')\n"
        "radio.discover = hang_up\n"
        "from blockiot.tools.cli import main\n"
        "sys.exit(main(['radio', 'list']))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "BrokenPipeError" in result.stderr
