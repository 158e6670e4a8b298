"""A node's data dir, held by one node at a time: `node.lock` is locked (flock) for as long
as the node runs, so a second node on the same dir (same key: an honest validator made to
equivocate) is refused at start. A start that fails removes a data dir it created.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from blockiot.chain.errors import ChainError

LOCK_NAME = "node.lock"


class DataDirBusy(ChainError):
    """Another node runs on this data dir, or the dir cannot be used."""


class DataDir:
    """`with DataDir(path) as d:` creates (parents too) and locks `path`; `d.abandon()`
    on a failed start removes it if this call created it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.created = False
        self._fd: int | None = None

    def __enter__(self) -> "DataDir":
        if self.path.exists() and not self.path.is_dir():
            raise DataDirBusy(f"data dir {self.path} exists and is not a directory")
        try:
            if not self.path.exists():
                self.path.mkdir(parents=True, mode=0o700)
                self.created = True
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise DataDirBusy(f"cannot use data dir {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirBusy(f"another node (pid {holder}) is running on {self.path}; "
                              "one data dir holds one node") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def abandon(self) -> None:
        """Undo a failed start: remove the data dir if it did not exist before."""
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
            self.created = False

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing releases the lock
            self._fd = None
