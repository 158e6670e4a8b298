"""Actuators: what a node does with a final command addressed to its device.

`HookActuator` runs a configured executable, `HOOK ACTION ARG...` (e.g. `relay.sh open
600` for a GPIO relay script), in a worker thread with a timeout, and hands back its exit
status: 0 is done, anything else (or a timeout, or a hook that cannot start) failed.
`LogActuator`, the default, only logs the command and reports it done.

Both are polled by the real-time loop: `start(command)`, then `finished()` returns
(command, ok, status) for each one that completed, for `NodeRuntime.report`.
"""
from __future__ import annotations

import queue
import subprocess
import threading
from pathlib import Path

from blockiot.chain.commands import DueCommand
from blockiot.chain.wire import Action

HOOK_TIMEOUT_S = 120.0
STATUS_TIMEOUT = 124  # as timeout(1) reports a command it stopped
STATUS_CANNOT_RUN = 126  # as a shell reports a command it cannot execute


def action_name(action: int) -> str:
    try:
        return Action(action).name.lower()
    except ValueError:
        return str(action)


class LogActuator:
    """Executes nothing: every command counts as done (the node logs it)."""

    def __init__(self) -> None:
        self._done: list[tuple[DueCommand, bool, int]] = []

    def start(self, command: DueCommand) -> None:
        self._done.append((command, True, 0))

    def finished(self) -> list[tuple[DueCommand, bool, int]]:
        done, self._done = self._done, []
        return done


class HookActuator:
    """Runs `hook ACTION ARG...` per command, one at a time, in a worker thread."""

    def __init__(self, hook: str | Path, *, timeout: float = HOOK_TIMEOUT_S) -> None:
        self.hook = str(hook)
        self.timeout = timeout
        self._todo: queue.Queue[DueCommand | None] = queue.Queue()
        self._done: queue.Queue[tuple[DueCommand, bool, int]] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="blockiot-actuator", daemon=True)
        self._thread.start()

    def start(self, command: DueCommand) -> None:
        self._todo.put(command)

    def finished(self) -> list[tuple[DueCommand, bool, int]]:
        done = []
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                return done

    def close(self) -> None:
        self._todo.put(None)
        self._thread.join(timeout=1.0)

    def _work(self) -> None:
        while (command := self._todo.get()) is not None:
            status = self.run(command)
            self._done.put((command, status == 0, status))

    def run(self, command: DueCommand) -> int:
        argv = [self.hook, action_name(command.action), *map(str, command.args)]
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=self.timeout).returncode
        except subprocess.TimeoutExpired:
            return STATUS_TIMEOUT
        except OSError:
            return STATUS_CANNOT_RUN
