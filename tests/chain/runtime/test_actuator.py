"""Actuators (chain/runtime/actuator.py): the hook runs as `HOOK ACTION ARG...` and its exit
status decides done or failed (a timeout is 124, a hook that cannot start 126); the
worker thread runs commands one at a time, in order; `LogActuator` reports everything
done. Real small shell scripts under tmp_path; waits are failure guards only."""
from __future__ import annotations

import os
import time

import pytest

from blockiot.chain.commands import DueCommand
from blockiot.chain.runtime.actuator import STATUS_CANNOT_RUN, STATUS_TIMEOUT, HookActuator, LogActuator, action_name
from blockiot.chain.wire import Action

GUARD_S = 30.0
OPEN = DueCommand("tx", 0, 5, Action.OPEN, (600, 7))
CLOSE = DueCommand("rule", 1, 6, Action.CLOSE, ())


def hook(tmp_path, body: str, name: str = "hook.sh"):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def finished_within(actuator, count: int) -> list:
    """What the actuator finished, once `count` commands are done (a guard, not a verdict)."""
    done = []
    deadline = time.monotonic() + GUARD_S
    while len(done) < count and time.monotonic() < deadline:
        done += actuator.finished()
        time.sleep(0.005)
    return done


def test_the_hook_gets_the_action_and_its_arguments_and_exit_0_is_done(tmp_path):
    script = hook(tmp_path, f'echo "$@" > "{tmp_path}/argv"\nexit 0')
    actuator = HookActuator(script)
    try:
        assert actuator.run(OPEN) == 0
        assert (tmp_path / "argv").read_text() == "open 600 7\n"
    finally:
        actuator.close()


def test_a_nonzero_exit_is_its_status(tmp_path):
    actuator = HookActuator(hook(tmp_path, "exit 3"))
    try:
        assert actuator.run(CLOSE) == 3
    finally:
        actuator.close()


def test_a_missing_hook_cannot_run(tmp_path):
    actuator = HookActuator(tmp_path / "absent.sh")
    try:
        assert actuator.run(OPEN) == STATUS_CANNOT_RUN == 126
    finally:
        actuator.close()


def test_a_hook_that_is_not_executable_cannot_run(tmp_path):
    script = hook(tmp_path, "exit 0")
    script.chmod(0o644)
    actuator = HookActuator(script)
    try:
        assert actuator.run(OPEN) == STATUS_CANNOT_RUN
    finally:
        actuator.close()


def test_a_hook_that_runs_too_long_is_stopped_as_a_timeout(tmp_path):
    actuator = HookActuator(hook(tmp_path, "exec sleep 60"), timeout=0.05)
    try:
        started = time.monotonic()
        assert actuator.run(OPEN) == STATUS_TIMEOUT == 124
        assert time.monotonic() - started < GUARD_S  # it did not wait for the sleep
    finally:
        actuator.close()


def test_the_worker_runs_commands_in_order_and_reports_each(tmp_path):
    script = hook(tmp_path, f'echo "$1" >> "{tmp_path}/log"\n[ "$1" = open ] && exit 0\nexit 5')
    actuator = HookActuator(script)
    try:
        actuator.start(OPEN)
        actuator.start(CLOSE)
        assert finished_within(actuator, 2) == [(OPEN, True, 0), (CLOSE, False, 5)]
        assert (tmp_path / "log").read_text() == "open\nclose\n"
        assert actuator.finished() == []  # each result is handed out once
    finally:
        actuator.close()


def test_close_ends_the_worker(tmp_path):
    actuator = HookActuator(hook(tmp_path, "exit 0"))
    actuator.close()
    assert not actuator._thread.is_alive()


def test_the_log_actuator_reports_every_command_done_once():
    actuator = LogActuator()
    actuator.start(OPEN)
    actuator.start(CLOSE)
    assert actuator.finished() == [(OPEN, True, 0), (CLOSE, True, 0)]
    assert actuator.finished() == []


@pytest.mark.parametrize(("action", "name"), [(Action.OPEN, "open"), (Action.DISCHARGE, "discharge"), (99, "99")])
def test_action_names(action, name):
    assert action_name(action) == name


def test_the_hook_reads_no_input(tmp_path):
    script = hook(tmp_path, f'cat > "{tmp_path}/stdin"\nexit 0')
    actuator = HookActuator(script, timeout=GUARD_S)
    read, write = os.pipe()  # stdin the hook would wait on for ever, were it inherited
    saved = os.dup(0)
    os.dup2(read, 0)
    try:
        assert actuator.run(OPEN) == 0
        assert (tmp_path / "stdin").read_text() == ""
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read, write):
            os.close(fd)
        actuator.close()
